using Platform.Host.Processes;

namespace Platform.Host.Linux;

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

    /// <summary>Deletes an empty chain no rule jumps to (flush it and remove the jumps first).</summary>
    public static Task DeleteChainAsync(string? table, string chain, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), "-X", chain], ct);

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

    /// <summary>How many rules the chain holds.</summary>
    public static async Task<int> CountAsync(string? table, string chain, CancellationToken ct) =>
        (await ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), "-S", chain], ct)).Stdout
            .Split('\n').Count(l => l.StartsWith("-A ", StringComparison.Ordinal));

    /// <summary>Deletes the chain's first rule.</summary>
    public static Task DeleteFirstAsync(string? table, string chain, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("iptables", ["-w", .. Table(table), "-D", chain, "1"], ct);

    /// <summary>Deletes every copy of the rule.</summary>
    public static async Task DeleteRuleAsync(string? table, string chain, IReadOnlyList<string> rule, CancellationToken ct)
    {
        for (var i = 0; i < 100 && (await ProcessRunner.RunAsync("iptables", ["-w", .. Table(table), "-D", chain, .. rule], ct)).Succeeded; i++) { }
    }
}
