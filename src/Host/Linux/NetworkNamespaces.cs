using Platform.Host.Processes;

namespace Platform.Host.Linux;

/// <summary>Named network name-spaces (<c>ip netns</c>), for builds and instances alike.</summary>
public static class NetworkNamespaces
{
    public static string PathOf(string name) => "/var/run/netns/" + name;

    public static bool Exists(string name) => File.Exists(PathOf(name));

    public static async Task AddAsync(string name, CancellationToken ct)
    {
        if (!Exists(name)) await ProcessRunner.CheckedAsync("ip", ["netns", "add", name], ct);
    }

    /// <summary>Deletes the name-space (throws when ip cannot); nothing happens when it is not there.</summary>
    public static async Task DeleteAsync(string name, CancellationToken ct)
    {
        if (Exists(name)) await ProcessRunner.CheckedAsync("ip", ["netns", "delete", name], ct);
    }

    /// <summary>The names of this machine's named name-spaces.</summary>
    public static async Task<IReadOnlyList<string>> ListAsync(CancellationToken ct)
    {
        var r = await ProcessRunner.RunAsync("ip", ["netns", "list"], ct);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToList();
    }

    /// <summary><c>ip</c> with the given arguments inside name-space <paramref name="name"/> (<c>ip -n</c>); throws when it fails.</summary>
    public static Task<ProcessResult> IpAsync(string name, IReadOnlyList<string> args, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("ip", ["-n", name, .. args], ct);
}
