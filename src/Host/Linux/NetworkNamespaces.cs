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

    /// <summary>Deletes the name-space; nothing happens when it is not there.</summary>
    public static async Task DeleteAsync(string name, CancellationToken ct)
    {
        if (Exists(name)) await ProcessRunner.RunAsync("ip", ["netns", "delete", name], ct);
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

/// <summary>iptables rules kept idempotent: checked (<c>-C</c>) before they are added, deleted until none is left.</summary>
public static class Iptables
{
    private static string[] Table(string? table) => table is null ? [] : ["-t", table];

    public static async Task<bool> HasChainAsync(string? table, string chain, CancellationToken ct) =>
        (await ProcessRunner.RunAsync("iptables", ["-w", .. Table(table), "-n", "-L", chain], ct)).Succeeded;

    public static async Task EnsureChainAsync(string? table, string chain, CancellationToken ct)
    {
        if (!await HasChainAsync(table, chain, ct))
            await ProcessRunner.RunAsync("iptables", ["-w", .. Table(table), "-N", chain], ct);   // a racing creator is fine
    }

    public static Task FlushAsync(string? table, string chain, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), "-F", chain], ct);

    public static async Task<bool> HasRuleAsync(string? table, string chain, IReadOnlyList<string> rule, CancellationToken ct) =>
        (await ProcessRunner.RunAsync("iptables", ["-w", .. Table(table), "-C", chain, .. rule], ct)).Succeeded;

    /// <summary>Adds the rule unless it is there: first in the chain (<paramref name="first"/>) or last.</summary>
    public static async Task EnsureRuleAsync(string? table, string chain, IReadOnlyList<string> rule, bool first, CancellationToken ct)
    {
        if (await HasRuleAsync(table, chain, rule, ct)) return;
        string[] where = first ? ["-I", chain, "1"] : ["-A", chain];
        await ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), .. where, .. rule], ct);
    }

    /// <summary>Appends the rule as it is (after a flush, when the chain is rebuilt in order).</summary>
    public static Task AppendAsync(string? table, string chain, IReadOnlyList<string> rule, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), "-A", chain, .. rule], ct);

    /// <summary>Deletes every copy of the rule.</summary>
    public static async Task DeleteRuleAsync(string? table, string chain, IReadOnlyList<string> rule, CancellationToken ct)
    {
        for (var i = 0; i < 100 && (await ProcessRunner.RunAsync("iptables", ["-w", .. Table(table), "-D", chain, .. rule], ct)).Succeeded; i++) { }
    }
}
