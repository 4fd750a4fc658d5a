using Platform.Host.Linux;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// What instances may reach, for every platform bridge of this agent (<c>{BridgePrefix}+</c>): the internet
/// (through CNI's masquerade) and their own project's instances, nothing else.
/// <list type="bullet">
/// <item><c>PLATFORM-{PREFIX}-INPUT</c> (from filter INPUT): packets from an instance to any address of this
/// machine — the bridge's gateway, the node's own addresses, whatever listens on 0.0.0.0 (the Api, the
/// agent's control port, PostgreSQL) — are dropped, except replies to connections the machine opened (the
/// router reaching a host port goes out through nat OUTPUT, and only its replies come back in). Instances get
/// no DNS from the node: they use the resolvers their image names, reached like any other destination.</item>
/// <item><c>PLATFORM-{PREFIX}-EGRESS</c> (from filter FORWARD): replies pass; traffic to a platform bridge is
/// left to <see cref="Network.IsolationChain"/> (its own bridge passes, another project's is dropped);
/// the operator's allowed ranges and port 53 of the machine's non-loopback resolvers pass; every other
/// non-public destination (<see cref="AddressRanges.NotPublic"/>: private, shared, link-local with the cloud
/// metadata service, loopback, multicast) is dropped.</item>
/// </list>
/// Published ports keep working: portmap's DNAT happens before filtering, and connections into an instance
/// arrive from the uplink or the machine itself, not from a platform bridge. IPv6 is switched off on the
/// bridges (instances have IPv4 only), so no link-local IPv6 address of the node is reachable either.
/// The chains are rebuilt once per process, before the first instance is attached (never empty on the way), and
/// the jumps into them are checked before they are added, so a restarted agent leaves one copy.
/// </summary>
public sealed class InstanceFirewall(string bridgePrefix, IReadOnlyList<string> allowedRanges)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private bool _ready;

    public string InputChain { get; } = $"PLATFORM-{bridgePrefix.ToUpperInvariant()}-INPUT";
    public string EgressChain { get; } = $"PLATFORM-{bridgePrefix.ToUpperInvariant()}-EGRESS";

    private string Bridges => bridgePrefix + "+";

    /// <summary>Installs the chains and their jumps; idempotent, and cheap after the first call in this process.</summary>
    public async Task EnsureAsync(CancellationToken ct)
    {
        if (_ready) return;
        await _lock.WaitAsync(ct);
        try
        {
            if (_ready) return;
            string[] replies = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"];
            string[] drop = ["-j", "DROP"];
            await RebuildAsync(InputChain, [replies, drop], ct);

            var egress = new List<string[]> { replies, new[] { "-o", Bridges, "-j", "RETURN" } };
            egress.AddRange(allowedRanges.Select(r => new[] { "-d", r, "-j", "RETURN" }));
            foreach (var resolver in AddressRanges.Resolvers())
            {
                egress.Add(["-d", resolver, "-p", "udp", "--dport", "53", "-j", "RETURN"]);
                egress.Add(["-d", resolver, "-p", "tcp", "--dport", "53", "-j", "RETURN"]);
            }
            egress.AddRange(AddressRanges.NotPublic.Select(b => new[] { "-d", b, "-j", "DROP" }));
            await RebuildAsync(EgressChain, egress, ct);

            await Iptables.EnsureRuleAsync(null, "INPUT", ["-i", Bridges, "-j", InputChain], first: true, ct);
            await Iptables.EnsureRuleAsync(null, "FORWARD", ["-i", Bridges, "-j", EgressChain], first: true, ct);
            _ready = true;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The bridge gets no IPv6 address: the node is not reachable from instances over link-local IPv6.</summary>
    public static async Task DisableIPv6Async(string bridge, CancellationToken ct)
    {
        var file = $"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6";
        if (File.Exists(file)) await File.WriteAllTextAsync(file, "1", ct);
    }

    /// <summary>Removes the jumps and the chains (tests, and an operator taking the node out of service).</summary>
    public async Task RemoveAsync(CancellationToken ct)
    {
        await Iptables.DeleteRuleAsync(null, "INPUT", ["-i", Bridges, "-j", InputChain], ct);
        await Iptables.DeleteRuleAsync(null, "FORWARD", ["-i", Bridges, "-j", EgressChain], ct);
        foreach (var chain in new[] { InputChain, EgressChain })
            if (await Iptables.HasChainAsync(null, chain, ct))
            {
                await Iptables.FlushAsync(null, chain, ct);
                await Iptables.DeleteChainAsync(null, chain, ct);
            }
        _ready = false;
    }

    /// <summary>
    /// The chain becomes <paramref name="rules"/> without ever being empty: the new rules go after the old ones, then
    /// the old ones are deleted from the top, so a restarted agent leaves running instances no gap to slip through
    /// (for a moment an old drop may come first: failing closed).
    /// </summary>
    private static async Task RebuildAsync(string chain, IEnumerable<string[]> rules, CancellationToken ct)
    {
        await Iptables.EnsureChainAsync(null, chain, ct);
        var old = await Iptables.CountAsync(null, chain, ct);
        foreach (var rule in rules) await Iptables.AppendAsync(null, chain, rule, ct);
        for (var i = 0; i < old; i++) await Iptables.DeleteFirstAsync(null, chain, ct);
    }
}
