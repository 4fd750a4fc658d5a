using System.Net;
using System.Net.Http.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Nodes;

/// <summary>
/// Two "machines" on one: each agent runs inside a network name-space this test creates (RECIPES.md),
/// joined to the host by a veth pair. The Api listens on the host ends, the router reaches each node's
/// host ports on its own address, and the scheduler spreads an app's replicas across both nodes.
/// Traffic stays on loopback and these name-spaces.
/// </summary>
[Collection("runtime")]
public sealed class TwoNodeTests : IAsyncLifetime
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..4];
    private readonly List<string> _namespaces = [];
    // Fresh /30 links each run, so that whatever a failed run left behind cannot collide.
    private static readonly int Octet = Random.Shared.Next(1, 250);
    private static readonly IPAddress[] HostEnds = [IPAddress.Parse($"10.213.{Octet}.1"), IPAddress.Parse($"10.213.{Octet + 1}.1")];
    private static readonly string[] NodeEnds = [$"10.213.{Octet}.2", $"10.213.{Octet + 1}.2"];

    private static async Task IpAsync(params string[] args) => (await Run.ToolAsync("ip", args)).EnsureSuccess("ip " + string.Join(' ', args));

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 2; i++)
        {
            var ns = $"ptn{i}-{_run}";
            var (hostEnd, nodeEnd) = ($"ptv{i}h{_run}", $"ptv{i}n{_run}");
            await IpAsync("netns", "add", ns);
            _namespaces.Add(ns);
            await IpAsync("link", "add", hostEnd, "type", "veth", "peer", "name", nodeEnd);
            await IpAsync("link", "set", nodeEnd, "netns", ns);
            await IpAsync("addr", "add", HostEnds[i] + "/30", "dev", hostEnd);
            await IpAsync("link", "set", hostEnd, "up");
            await IpAsync("-n", ns, "addr", "add", NodeEnds[i] + "/30", "dev", nodeEnd);
            await IpAsync("-n", ns, "link", "set", nodeEnd, "up");
            await IpAsync("-n", ns, "link", "set", "lo", "up");
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var ns in _namespaces)
            await Run.ToolAsync("ip", ["netns", "del", ns]);   // takes the veth pairs with it
    }

    [Fact]
    public async Task Replicas_spread_across_two_agents_in_two_network_namespaces_and_answer_through_the_router()
    {
        await using var cluster = await Cluster.StartAsync([IPAddress.Loopback, .. HostEnds]);
        for (var i = 0; i < 2; i++)
            await cluster.StartAgentAsync($"node{i}", apiUrl: cluster.Host.AddressOn(HostEnds[i]), address: NodeEnds[i], netns: _namespaces[i]);

        var image = await cluster.ImageAsync("spread", "mkdir -p /tmp/www && cat /proc/sys/kernel/random/uuid > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www");
        await cluster.CreateAppAsync("spread", image, instances: 4);
        var instances = await cluster.WaitForInstancesAsync("spread", 4);
        var perNode = instances.GroupBy(i => i.GetProperty("node").GetString()).ToDictionary(g => g.Key!, g => g.Count());
        Assert.Equal(2, perNode["node0"]);
        Assert.Equal(2, perNode["node1"]);

        var bodies = new HashSet<string>();
        await Cluster.WaitAsync(async () =>
        {
            using var r = await cluster.ThroughRouterAsync("spread");
            if (r.StatusCode == HttpStatusCode.OK) bodies.Add(await r.Content.ReadAsStringAsync());
            return bodies.Count == 4;
        }, 30, () => $"all four instances through the router (saw {bodies.Count})");

        // Scaling down keeps the spread: one replica per node.
        await cluster.Admin.PatchAsJsonAsync($"{cluster.Apps}/spread", new { instances = 2 }).ShouldBeAsync(HttpStatusCode.OK);
        var left = await cluster.WaitForInstancesAsync("spread", 2);
        Assert.Equal(2, left.Select(i => i.GetProperty("node").GetString()).Distinct().Count());

        // node1 goes silent: once NotReady, its replica is placed on node0. When node1 comes back, it
        // stops what was moved away: the app never runs more replicas than it asked for.
        var moved = left.Single(i => i.GetProperty("node").GetString() == "node1").GetProperty("id").GetString()!;
        await cluster.KillAgentAsync("node1");
        await Cluster.WaitAsync(async () => await cluster.NodeStateAsync("node1") == "NotReady", 30, "node1 NotReady");
        await Cluster.WaitAsync(async () =>
        {
            var now = await cluster.InstancesAsync("spread");
            return now.Count == 2 && now.All(i => i.GetProperty("node").GetString() == "node0" && i.GetProperty("state").GetString() == "Ready");
        }, 60, () => "both replicas running on node0\n" + cluster.AgentLogs());
        Assert.True(Directory.Exists(Path.Combine(cluster.AgentDataDir("node1"), "instances", moved)), "the silent node still runs its old container");
        cluster.RestartAgent("node1");
        await Cluster.WaitAsync(async () => await cluster.NodeStateAsync("node1") == "Ready", 30, "node1 Ready again");
        await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(Path.Combine(cluster.AgentDataDir("node1"), "instances", moved))), 30,
            "node1 to stop the replica that was moved away");
        Assert.Equal(2, (await cluster.InstancesAsync("spread")).Count);
    }
}
