namespace Platform.Contracts;

/// <summary>
/// Bounds on the quantities a client may ask for. They reject absurd values at the edge (a negative
/// memory size, a billion instances) so that arithmetic in quota admission can never overflow.
/// </summary>
public static class Quantities
{
    public const int MinMemoryMiB = 16;
    public const int MaxMemoryMiB = 1024 * 1024;          // 1 TiB for one instance
    public const int MinCpuMillicores = 10;
    public const int MaxCpuMillicores = 256_000;          // 256 cores
    public const int MaxInstances = 1_000;
    public const int MinPort = 1;
    public const int MaxPort = 65_535;
    public const int MaxEnvEntries = 200;
    public const int MaxEnvValueLength = 32 * 1024;
    public const int MaxHealthCheckPathLength = 512;
    public const long MaxQuota = 1_000_000_000;           // any quota dimension

    public static string? Range(long value, long min, long max) =>
        value < min || value > max ? $"must be between {min} and {max} (got {value})." : null;
}
