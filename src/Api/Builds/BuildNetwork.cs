using System.Collections.Concurrent;
using System.Net;
using Platform.Api.Infrastructure;

namespace Platform.Api.Builds;

/// <summary>
/// The network RUN steps get (Platform:Builds:Network = "isolated"): one network name-space per build,
/// a veth on a bridge of its own (ports isolated from each other, so builds do not see each other),
/// NAT to the outside. The firewall lets a build reach the internet's package mirrors and nothing
/// else: every address of this machine is dropped on input (the Api, PostgreSQL, the agents, the
/// router — whatever they listen on), and private, loopback, link-local, shared and multicast
/// destinations are dropped on forward, except port 53 of the machine's own resolvers.
/// </summary>
public sealed class BuildNetwork(string bridge, string subnet)
{
    private const string Chain = "PLATFORM-BUILDS";
    private static readonly string[] Blocked =
        ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"];
    private static readonly ConcurrentDictionary<int, Guid> Leases = new();
    private static readonly SemaphoreSlim SetupLock = new(1, 1);
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

    /// <summary>The subnet's first three octets (the options validator has checked it is a /24).</summary>
    private readonly string prefix = TryParseSubnet(subnet, out var p) ? $"{p.A}.{p.B}.{p.C}" : throw new ArgumentException($"'{subnet}' is not a /24", nameof(subnet));

    /// <summary>The bridge's address: this machine, as a build sees it.</summary>
    public string Gateway => prefix + ".1";

    /// <summary>A build's network name-space, ready; dispose removes it.</summary>
    public sealed class Lease(BuildNetwork network, string name, int host) : IAsyncDisposable
    {
        public string Path => "/var/run/netns/" + name;
        public string Address => $"{network.prefix}.{host}";

        public async ValueTask DisposeAsync()
        {
            await Exec.RunAsync("ip", ["netns", "delete", name], CancellationToken.None);
            Leases.TryRemove(host, out _);
        }
    }

    public async Task<Lease> CreateAsync(Guid build, CancellationToken ct)
    {
        await EnsureAsync(ct);
        var host = Enumerable.Range(2, 253).FirstOrDefault(h => Leases.TryAdd(h, build));
        if (host == 0) throw new InvalidOperationException("The build network has no free address: too many builds run on this machine at once.");
        var name = NamespaceOf(build);
        var veth = "pbv" + build.ToString("N")[^10..];
        var lease = new Lease(this, name, host);
        try
        {
            await Exec.RunAsync("ip", ["netns", "delete", name], ct);   // a leftover of a build whose Api died
            (await Exec.RunAsync("ip", ["netns", "add", name], ct)).EnsureSuccess("ip netns add");
            (await Exec.RunAsync("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name], ct)).EnsureSuccess("ip link add veth");
            (await Exec.RunAsync("ip", ["link", "set", veth, "master", bridge, "up"], ct)).EnsureSuccess("ip link set master");
            (await Exec.RunAsync("ip", ["link", "set", "dev", veth, "type", "bridge_slave", "isolated", "on"], ct)).EnsureSuccess("isolate bridge port");
            (await Exec.RunAsync("ip", ["-n", name, "addr", "add", $"{lease.Address}/24", "dev", "eth0"], ct)).EnsureSuccess("ip addr add");
            (await Exec.RunAsync("ip", ["-n", name, "link", "set", "eth0", "up"], ct)).EnsureSuccess("ip link set eth0 up");
            (await Exec.RunAsync("ip", ["-n", name, "link", "set", "lo", "up"], ct)).EnsureSuccess("ip link set lo up");
            (await Exec.RunAsync("ip", ["-n", name, "route", "add", "default", "via", Gateway], ct)).EnsureSuccess("ip route add default");
            return lease;
        }
        catch
        {
            await lease.DisposeAsync();
            throw;
        }
    }

    /// <summary>Removes name-spaces of builds that no longer run here (their Api died).</summary>
    public static async Task RemoveLeftoversAsync(IReadOnlySet<string> keep, CancellationToken ct)
    {
        var list = await Exec.RunAsync("ip", ["netns", "list"], ct);
        foreach (var line in list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            if (name.StartsWith("pb-", StringComparison.Ordinal) && !keep.Contains(name))
                await Exec.RunAsync("ip", ["netns", "delete", name], ct);
        }
    }

    /// <summary>The build's name-space: from the id's random end (a version 7 id begins with its millisecond).</summary>
    public static string NamespaceOf(Guid build) => "pb-" + build.ToString("N")[^12..];

    /// <summary>Bridge, forwarding, NAT and the firewall chain; idempotent (checked rules are not added twice).</summary>
    private async Task EnsureAsync(CancellationToken ct)
    {
        if (ready) return;
        await SetupLock.WaitAsync(ct);
        try
        {
            if (ready) return;
            if ((await Exec.RunAsync("ip", ["link", "show", bridge], ct)).Exit != 0)
                (await Exec.RunAsync("ip", ["link", "add", bridge, "type", "bridge"], ct)).EnsureSuccess("ip link add bridge");
            await Exec.RunAsync("ip", ["addr", "replace", Gateway + "/24", "dev", bridge], ct);
            (await Exec.RunAsync("ip", ["link", "set", bridge, "up"], ct)).EnsureSuccess("ip link set bridge up");
            await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1", ct);

            await Exec.RunAsync("iptables", ["-w", "-N", Chain], ct);   // exists already: fine
            (await Exec.RunAsync("iptables", ["-w", "-F", Chain], ct)).EnsureSuccess("iptables -F");
            var rules = new List<string[]> { new[] { "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT" } };
            foreach (var resolver in Resolvers())
            {
                rules.Add(["-d", resolver, "-p", "udp", "--dport", "53", "-j", "ACCEPT"]);
                rules.Add(["-d", resolver, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"]);
            }
            rules.AddRange(Blocked.Select(b => new[] { "-d", b, "-j", "DROP" }));
            rules.Add(["-j", "ACCEPT"]);
            foreach (var r in rules)
                (await Exec.RunAsync("iptables", ["-w", "-A", Chain, .. r], ct)).EnsureSuccess("iptables -A " + Chain);
            await EnsureRuleAsync(null, "FORWARD", ["-i", bridge, "-j", Chain], ct);
            await EnsureRuleAsync(null, "FORWARD", ["-o", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"], ct);
            await EnsureRuleAsync(null, "INPUT", ["-i", bridge, "-j", "DROP"], ct);
            await EnsureRuleAsync("nat", "POSTROUTING", ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"], ct);
            ready = true;
        }
        finally
        {
            SetupLock.Release();
        }
    }

    private static async Task EnsureRuleAsync(string? table, string chain, string[] rule, CancellationToken ct)
    {
        string[] t = table is null ? [] : ["-t", table];
        if ((await Exec.RunAsync("iptables", ["-w", .. t, "-C", chain, .. rule], ct)).Exit == 0) return;
        (await Exec.RunAsync("iptables", ["-w", .. t, "-I", chain, "1", .. rule], ct)).EnsureSuccess($"iptables -I {chain}");
    }

    /// <summary>Non-loopback name servers of this machine: the one private destination a build may reach (port 53).</summary>
    private static IEnumerable<string> Resolvers()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/etc/resolv.conf"); } catch (IOException) { yield break; }
        foreach (var l in lines)
        {
            var parts = l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts is ["nameserver", var a, ..] && IPAddress.TryParse(a, out var ip)
                && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !IPAddress.IsLoopback(ip))
                yield return a;
        }
    }
}
