namespace Platform.Contracts;

/// <summary>One dimension of a quota check: how much is asked, how much is in use, the limit.</summary>
public sealed record QuotaFigure(string Resource, string Scope, long Asked, long Used, long Limit)
{
    public bool Exceeded => Used + Asked > Limit;
}

/// <summary>The resources an app takes while it runs: its instances times its per-instance size.</summary>
public readonly record struct AppFootprint(long MemoryMiB, long CpuMillicores, long Instances, long Apps)
{
    public static AppFootprint Of(int instances, int memoryMiB, int cpuMillicores) =>
        new((long)instances * memoryMiB, (long)instances * cpuMillicores, instances, 1);

    public static AppFootprint operator +(AppFootprint a, AppFootprint b) =>
        new(a.MemoryMiB + b.MemoryMiB, a.CpuMillicores + b.CpuMillicores, a.Instances + b.Instances, a.Apps + b.Apps);

    public static AppFootprint operator -(AppFootprint a, AppFootprint b) =>
        new(a.MemoryMiB - b.MemoryMiB, a.CpuMillicores - b.CpuMillicores, a.Instances - b.Instances, a.Apps - b.Apps);
}

public static class QuotaMath
{
    /// <summary>
    /// Admission against one scope: every dimension where the change grows usage past the limit.
    /// A change that shrinks a dimension is always admitted in that dimension, even when usage is
    /// already over a limit that was lowered later (scaling down must stay possible).
    /// </summary>
    public static IReadOnlyList<QuotaFigure> Violations(string scope, AppFootprint used, AppFootprint delta, QuotaLimits limits)
    {
        var result = new List<QuotaFigure>();
        Check("memoryMiB", used.MemoryMiB, delta.MemoryMiB, limits.MemoryMiB);
        Check("cpuMillicores", used.CpuMillicores, delta.CpuMillicores, limits.CpuMillicores);
        Check("instances", used.Instances, delta.Instances, limits.Instances);
        Check("apps", used.Apps, delta.Apps, limits.Apps);
        return result;

        void Check(string resource, long u, long d, long? limit)
        {
            if (limit is { } l && d > 0 && u + d > l)
                result.Add(new QuotaFigure(resource, scope, d, u, l));
        }
    }
}

/// <summary>Limits on the app dimensions; null means no limit at this scope.</summary>
public sealed record QuotaLimits(long? MemoryMiB, long? CpuMillicores, long? Instances, long? Apps);
