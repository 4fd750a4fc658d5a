using System.Net;
using System.Net.Sockets;
using System.Text;
using Platform.Host.Linux;
using Platform.Host.Processes;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Instances;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant's instance probes the node from inside a real container on the agent's CNI network, with the
/// agent's firewall in place. Everything it may not reach listens on all addresses (as the Api and the
/// agent do under scripts/run.sh) or sits in a network name-space this test made: a "world" reached through
/// the host by a veth (whose host end is also a second address of the node), holding a public-looking TEST-NET address (the internet), a link-local one (a cloud
/// metadata service), a private one and one in a range the operator allowed. Each blocked probe has a
/// positive control: the same probe from the host reaches the same listener.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class InstanceNetworkAttackTests : IAsyncLifetime
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(10);
    private readonly string _sfx = new(Enumerable.Range(0, 5).Select(_ => (char)('a' + Random.Shared.Next(26))).ToArray());
    private readonly int _r = Random.Shared.Next(1, 250);
    private Busybox _lab = null!;
    private Network _network = null!;
    private ProjectNetwork _project = null!;
    private readonly List<(string Id, ProjectNetwork Net, int? Port)> _attached = [];
    private TcpListener? _listener;
    private ControlServer? _control;
    private RunningProcess? _world;
    private string _www = "";

    private string Prefix => "h" + _sfx;
    private string World => "hw-" + _sfx;
    private string Veth => "hwa" + _sfx;
    private string LinkNet => $"10.{200 + _r % 50}.{_r}";
    private string HostAddress => $"172.{16 + _r % 16}.{_r}.{1 + _r % 200}";
    private string Internet => $"203.0.113.{_r}";
    private string Metadata => $"169.254.{_r}.{254 - _r % 100}";
    private string Allowed => $"192.168.{_r}.{1 + _r % 200}";
    private string Private => LinkNet + ".2";
    private int ListenerPort => ((IPEndPoint)_listener!.LocalEndpoint).Port;

    public async Task InitializeAsync()
    {
        _lab = await Busybox.CreateAsync();
        _network = new Network("/usr/lib/cni", Path.Combine(_lab.Dir, "ipam"), Prefix, [Allowed + "/32"]);
        _project = new ProjectNetwork(Prefix + "0", $"10.{200 + (_r + 25) % 50}.{_r}.0/24");

        // The node's listeners, on all addresses: a plain TCP service and the agent's own control endpoint.
        var listener = new TcpListener(IPAddress.IPv6Any, 0);
        listener.Server.DualMode = true;
        listener.Start();
        _listener = listener;
        _ = ServeAsync(listener);
        _control = new ControlServer(TimeProvider.System);
        await _control.StartAsync("0.0.0.0", 0, new FakeRuntime(TimeProvider.System), CancellationToken.None);

        // The world beyond the node: a name-space behind a veth, routed through the host. The host's end of the
        // veth also carries a second address of the host (this machine has no dummy interfaces).
        await NetworkNamespaces.AddAsync(World, CancellationToken.None);
        await Ip("link", "add", Veth, "type", "veth", "peer", "name", "eth0", "netns", World);
        await Ip("addr", "add", LinkNet + ".1/24", "dev", Veth);
        await Ip("addr", "add", HostAddress + "/32", "dev", Veth);
        await Ip("link", "set", Veth, "up");
        await NetworkNamespaces.IpAsync(World, ["addr", "add", Private + "/24", "dev", "eth0"], CancellationToken.None);
        await NetworkNamespaces.IpAsync(World, ["link", "set", "eth0", "up"], CancellationToken.None);
        await NetworkNamespaces.IpAsync(World, ["link", "set", "lo", "up"], CancellationToken.None);
        foreach (var a in new[] { Internet, Metadata, Allowed })
        {
            await NetworkNamespaces.IpAsync(World, ["addr", "add", a + "/32", "dev", "lo"], CancellationToken.None);
            await Ip("route", "add", a + "/32", "via", Private);
        }
        await NetworkNamespaces.IpAsync(World, ["route", "add", "default", "via", LinkNet + ".1"], CancellationToken.None);
        await File.WriteAllTextAsync("/proc/sys/net/ipv4/ip_forward", "1");
        _www = Path.Combine(_lab.Dir, "world-www");
        Directory.CreateDirectory(_www);
        await File.WriteAllTextAsync(Path.Combine(_www, "index.html"), "world");
        _world = ProcessRunner.Start(new ProcessSpec("ip", ["netns", "exec", World, "busybox", "httpd", "-f", "-p", "8080", "-h", _www])
        {
            Timeout = Timeout.InfiniteTimeSpan,
        });
    }

    public async Task DisposeAsync()
    {
        foreach (var c in await _lab.Runc.ListAsync(CancellationToken.None))
            await _lab.Runc.StopAsync(c.Id, TimeSpan.Zero, CancellationToken.None);
        foreach (var (id, net, port) in _attached)
            await _network.DetachAsync(id, net, port, 8080, CancellationToken.None);
        await _network.RemoveBridgeAsync(_project, CancellationToken.None);
        await _network.Firewall.RemoveAsync(CancellationToken.None);
        if (_world is not null) await _world.DisposeAsync();
        await NetworkNamespaces.DeleteAsync(World, CancellationToken.None);
        _listener?.Stop();
        if (_control is not null) await _control.DisposeAsync();
        await _lab.DisposeAsync();
    }

    private static async Task ServeAsync(TcpListener listener)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.0 200 OK\r\n\r\nnode\n"));
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
        }
    }

    private Task Ip(params string[] args) => ProcessRunner.CheckedAsync("ip", args, CancellationToken.None, T);

    /// <summary>
    /// The probe, a shell function: an HTTP/1.0 request through <c>nc</c>; "NAME=reached" when an HTTP status line came back.
    /// The request's side stays open a moment: Kestrel drops a request whose client has already half-closed. Three tries
    /// before "blocked": on a loaded machine a first IPv6 neighbour discovery can outlast one try (a blocked target is
    /// blocked all three times, so this only makes the negative checks stricter).
    /// </summary>
    private const string Probe =
        "probe() { for try in 1 2 3; do if { printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 2; } | timeout 5 nc -w 3 \"$2\" \"$3\" 2>/dev/null | grep -q 'HTTP/1'; then echo \"$1=reached\"; return; fi; done; echo \"$1=blocked\"; }; ";

    private static string Script(IEnumerable<(string Name, string Address, int Port)> targets) =>
        Probe + string.Concat(targets.Select(t => $"probe {t.Name} {t.Address} {t.Port} & ")) + "wait; echo probes-done";

    private async Task<(string Id, Attachment Attachment)> AttachAsync(string name, int? hostPort = null)
    {
        var id = $"{name}-{_sfx}";
        var attachment = await _network.AttachAsync(id, _project, hostPort, 8080, CancellationToken.None);
        _attached.Add((id, _project, hostPort));
        return (id, attachment);
    }

    [Fact]
    public async Task An_instance_reaches_the_internet_and_its_project_but_not_the_node_metadata_or_private_ranges()
    {
        var hostPort = 42000 + Random.Shared.Next(2000);
        var (serverId, server) = await AttachAsync("srv", hostPort);
        await _lab.StartAsync(serverId, _lab.Spec(serverId, ["httpd", "-f", "-p", "8080", "-h", "/www"], Seccomp.Load(Seccomp.DefaultProfilePath), server.NamespacePath));
        var (proberId, prober) = await AttachAsync("prb");
        var gateway = _project.Subnet.Replace(".0/24", ".1");

        (string, string, int)[] forbidden =
        [
            ("node-via-gateway", gateway, ListenerPort),
            ("node-via-host-address", HostAddress, ListenerPort),
            ("node-via-link-address", LinkNet + ".1", ListenerPort),
            ("agent-control-port", gateway, _control!.Port),
            ("metadata", Metadata, 8080),
            ("private-range", Private, 8080),
        ];
        (string, string, int)[] permitted =
        [
            ("internet", Internet, 8080),
            ("operator-allowed-range", Allowed, 8080),
            ("same-project-instance", server.Address, 8080),
        ];
        await WaitUntilServedAsync(server.Address);

        // Over IPv6 link-local: the node at the address its bridge would have (EUI-64 of the bridge's MAC), and as
        // the positive control the project's other instance at its own (once duplicate address detection is done).
        var serverLinkLocal = await LinkLocalAsync(server.Namespace);
        await LinkLocalAsync(prober.Namespace);
        forbidden = [.. forbidden, ("node-over-ipv6", Eui64LinkLocal(File.ReadAllText($"/sys/class/net/{_project.Bridge}/address").Trim()) + "%eth0", ListenerPort)];
        permitted = [.. permitted, ("same-project-over-ipv6", serverLinkLocal + "%eth0", 8080)];

        var inside = await _lab.RunAsync(proberId, Script(forbidden.Concat(permitted)), Seccomp.Load(Seccomp.DefaultProfilePath), prober.NamespacePath);
        Assert.Contains("probes-done", inside);
        foreach (var (name, _, _) in forbidden) Assert.True(inside.Contains($"{name}=blocked"), $"{name}: {inside}");
        foreach (var (name, _, _) in permitted) Assert.True(inside.Contains($"{name}=reached"), $"{name}: {inside}");

        // Positive controls: the same probe from the host reaches every listener the instance could not.
        var fromHost = await ProcessRunner.CheckedAsync("busybox", ["sh", "-c", Script(forbidden[..^1])], CancellationToken.None, TimeSpan.FromSeconds(30));
        foreach (var (name, _, _) in forbidden[..^1]) Assert.True(fromHost.Stdout.Contains($"{name}=reached"), $"{name} from the host: {fromHost.Stdout}");

        // The router's path: the published port reaches the instance from the host, by loopback and by a host address.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        Assert.Equal("hello from the container", await http.GetStringAsync($"http://127.0.0.1:{hostPort}/"));
        Assert.Equal("hello from the container", await http.GetStringAsync($"http://{HostAddress}:{hostPort}/"));
    }

    [Fact]
    public async Task Installing_the_firewall_again_as_a_restarted_agent_does_leaves_one_copy_of_each_rule()
    {
        await _network.Firewall.EnsureAsync(CancellationToken.None);
        var restarted = new InstanceFirewall(Prefix, [Allowed + "/32"]);
        await restarted.EnsureAsync(CancellationToken.None);
        var rules = (await ProcessRunner.CheckedAsync("iptables", ["-w", "-S"], CancellationToken.None, T)).Stdout.Split('\n');
        Assert.Single(rules, r => r == $"-A INPUT -i {Prefix}+ -j {restarted.InputChain}");
        Assert.Single(rules, r => r == $"-A FORWARD -i {Prefix}+ -j {restarted.EgressChain}");
        Assert.Single(rules, r => r == $"-A {restarted.InputChain} -j DROP");
        Assert.Single(rules, r => r == $"-A {restarted.EgressChain} -d 169.254.0.0/16 -j DROP");
        Assert.Equal(2, rules.Count(r => r.StartsWith($"-A {restarted.InputChain} ")));
    }

    /// <summary>The link-local IPv6 address of eth0 in <paramref name="ns"/>, once it is usable (no longer tentative).</summary>
    private static async Task<string> LinkLocalAsync(string ns)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var shown = (await ProcessRunner.CheckedAsync("ip", ["-n", ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"], CancellationToken.None, T)).Stdout;
            var address = shown.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(w => w != "inet6").Skip(1).FirstOrDefault();
            if (address is not null && !shown.Contains("tentative")) return address.Split('/')[0];
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no usable link-local address in {ns}: {shown}");
            await Task.Delay(100);
        }
    }

    /// <summary>fe80::/64 with the interface id made from a MAC (EUI-64), as the kernel's default address generation does.</summary>
    private static string Eui64LinkLocal(string mac)
    {
        var b = mac.Split(':').Select(x => Convert.ToByte(x, 16)).ToArray();
        byte[] id = [(byte)(b[0] ^ 0x02), b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
        return $"fe80::{id[0] << 8 | id[1]:x}:{id[2] << 8 | id[3]:x}:{id[4] << 8 | id[5]:x}:{id[6] << 8 | id[7]:x}";
    }

    private static async Task WaitUntilServedAsync(string address)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                await http.GetStringAsync($"http://{address}:8080/");
                return;
            }
            catch (Exception e) when ((e is HttpRequestException or TaskCanceledException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }
}
