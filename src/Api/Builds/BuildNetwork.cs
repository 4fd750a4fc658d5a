using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Host.Linux;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>
/// The network RUN steps get (Platform:Builds:Network = "isolated"): one network name-space per build,
/// a veth on a bridge of its own (ports isolated from each other, so builds do not see each other),
/// NAT to the outside. The firewall lets a build reach the internet's package mirrors and nothing
/// else: every address of this machine is dropped on input (the Api, PostgreSQL, the agents, the
/// router — whatever they listen on), and private, loopback, link-local, shared and multicast
/// destinations are dropped on forward, except port 53 of the machine's own resolvers.
/// </summary>
public sealed class BuildNetwork(IOptions<PlatformOptions> options)
{
    private const string Chain = "PLATFORM-BUILDS";

    /// <summary>Host addresses (.2–.254) leased to this host's running builds; two Api hosts in one process keep their own.</summary>
    private readonly ConcurrentDictionary<int, Guid> leases = new();
    private readonly SemaphoreSlim setupLock = new(1, 1);
    private bool ready;

    public static bool TryParseSubnet(string value, out (byte A, byte B, byte C) prefix)
    {
        prefix = default;
        var parts = value.Split('/');
        if (parts.Length != 2 || parts[1] != "24" || !IPAddress.TryParse(parts[0], out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork) return false;
        var b = ip.GetAddressBytes();
        if (b[3] != 0) return false;
        prefix = (b[0], b[1], b[2]);
        return true;
    }

    private string Bridge => options.Value.Builds.Bridge;
    private string Subnet => options.Value.Builds.Subnet;

    /// <summary>The subnet's first three octets. Read on first use, after the options validator has checked it is a /24.</summary>
    private string Prefix => TryParseSubnet(Subnet, out var p) ? $"{p.A}.{p.B}.{p.C}" : throw new InvalidOperationException($"Platform:Builds:Subnet '{Subnet}' is not a /24");

    /// <summary>The bridge's address: this machine, as a build sees it.</summary>
    public string Gateway => Prefix + ".1";

    /// <summary>A build's network name-space, ready; dispose removes it.</summary>
    public sealed class Lease(BuildNetwork network, string name, int host) : IAsyncDisposable
    {
        public string Path => NetworkNamespaces.PathOf(name);
        public string Address => $"{network.Prefix}.{host}";

        public async ValueTask DisposeAsync()
        {
            await NetworkNamespaces.DeleteAsync(name, CancellationToken.None);
            network.leases.TryRemove(host, out _);
        }
    }

    public async Task<Lease> CreateAsync(Guid build, CancellationToken ct)
    {
        await EnsureAsync(ct);
        var host = Enumerable.Range(2, 253).FirstOrDefault(h => leases.TryAdd(h, build));
        if (host == 0) throw new InvalidOperationException("The build network has no free address: too many builds run on this machine at once.");
        var name = NamespaceOf(build);
        var veth = VethOf(name);
        var lease = new Lease(this, name, host);
        try
        {
            await NetworkNamespaces.DeleteAsync(name, ct);   // a leftover of a build whose Api died
            await NetworkNamespaces.AddAsync(name, ct);
            await ProcessRunner.CheckedAsync("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name], ct);
            await ProcessRunner.CheckedAsync("ip", ["link", "set", veth, "master", Bridge, "up"], ct);
            await ProcessRunner.CheckedAsync("ip", ["link", "set", "dev", veth, "type", "bridge_slave", "isolated", "on"], ct);
            await NetworkNamespaces.IpAsync(name, ["addr", "add", $"{lease.Address}/24", "dev", "eth0"], ct);
            await NetworkNamespaces.IpAsync(name, ["link", "set", "eth0", "up"], ct);
            await NetworkNamespaces.IpAsync(name, ["link", "set", "lo", "up"], ct);
            await NetworkNamespaces.IpAsync(name, ["route", "add", "default", "via", Gateway], ct);
            return lease;
        }
        catch
        {
            await lease.DisposeAsync();
            throw;
        }
    }

    /// <summary>Removes the name-space of a build that no longer runs here (its Api died); nothing when there is none.</summary>
    public static Task RemoveAsync(Guid build, CancellationToken ct) => NetworkNamespaces.DeleteAsync(NamespaceOf(build), ct);

    /// <summary>
    /// Removes name-spaces of builds that no longer run here (their Api died): only those whose veth is a port of
    /// this platform's bridge, so another platform on the machine (other settings: a developer's, a test's) keeps
    /// its builds' name-spaces, which this one's cgroups do not list.
    /// </summary>
    public async Task RemoveLeftoversAsync(IReadOnlySet<string> keep, CancellationToken ct)
    {
        var ports = await ProcessRunner.RunAsync("ip", ["-o", "link", "show", "master", Bridge], ct);
        if (!ports.Succeeded) return;   // no bridge: no build of this platform's has a name-space
        var ours = ports.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3) is [_, var n, _] ? n.Trim().Split('@')[0] : "").Where(n => n.StartsWith("pbv", StringComparison.Ordinal)).ToHashSet();
        foreach (var name in await NetworkNamespaces.ListAsync(ct))
            if (name.StartsWith("pb-", StringComparison.Ordinal) && !keep.Contains(name) && ours.Contains(VethOf(name)))
                await NetworkNamespaces.DeleteAsync(name, ct);
    }

    /// <summary>The host end of a build name-space's veth (the id's last ten hex digits).</summary>
    private static string VethOf(string ns) => "pbv" + ns[^10..];

    /// <summary>The build's name-space: from the id's random end (a version 7 id begins with its millisecond).</summary>
    public static string NamespaceOf(Guid build) => "pb-" + build.ToString("N")[^12..];

    /// <summary>Bridge, forwarding, NAT and the firewall chain; idempotent (checked rules are not added twice).</summary>
    private async Task EnsureAsync(CancellationToken ct)
    {
        if (ready) return;
        await setupLock.WaitAsync(ct);
        try
        {
            if (ready) return;
            if (!(await ProcessRunner.RunAsync("ip", ["link", "show", Bridge], ct)).Succeeded)
                await ProcessRunner.CheckedAsync("ip", ["link", "add", Bridge, "type", "bridge"], ct);
            await ProcessRunner.RunAsync("ip", ["addr", "replace", Gateway + "/24", "dev", Bridge], ct);
            await ProcessRunner.CheckedAsync("ip", ["link", "set", Bridge, "up"], ct);
            await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1", ct);

            await Iptables.EnsureChainAsync(null, Chain, ct);
            await Iptables.FlushAsync(null, Chain, ct);
            var rules = new List<string[]> { new[] { "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT" } };
            foreach (var resolver in AddressRanges.Resolvers())
            {
                rules.Add(["-d", resolver, "-p", "udp", "--dport", "53", "-j", "ACCEPT"]);
                rules.Add(["-d", resolver, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"]);
            }
            rules.AddRange(AddressRanges.NotPublic.Select(b => new[] { "-d", b, "-j", "DROP" }));
            rules.Add(["-j", "ACCEPT"]);
            foreach (var r in rules) await Iptables.AppendAsync(null, Chain, r, ct);
            await Iptables.EnsureRuleAsync(null, "FORWARD", ["-i", Bridge, "-j", Chain], first: true, ct);
            await Iptables.EnsureRuleAsync(null, "FORWARD", ["-o", Bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"], first: true, ct);
            await Iptables.EnsureRuleAsync(null, "INPUT", ["-i", Bridge, "-j", "DROP"], first: true, ct);
            await Iptables.EnsureRuleAsync("nat", "POSTROUTING", ["-s", Subnet, "!", "-o", Bridge, "-j", "MASQUERADE"], first: true, ct);
            ready = true;
        }
        finally
        {
            setupLock.Release();
        }
    }
}
