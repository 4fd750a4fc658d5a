using System.Net;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Nodes.Hostile;

/// <summary>
/// A platform admin removes a node that runs a container (the real agent, runc, CNI): the agent is told
/// so on its next call, stops and removes what it runs, sets its credentials aside and does not come
/// back; the app stops being routed to it.
/// </summary>
[Trait("Suite", "Hostile")]
[Collection("runtime")]
public sealed class NodeRevocationAttackTests : IAsyncLifetime
{
    private Cluster _cluster = null!;
    private const string Node = "rv-node";
    private const string Web = "mkdir -p /tmp/www && echo revoked-test > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";

    public async Task InitializeAsync()
    {
        _cluster = await Cluster.StartAsync();
        await _cluster.StartAgentAsync(Node);
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private string AgentDir => _cluster.AgentDataDir(Node);

    private int Bundles() =>
        Directory.Exists(Path.Combine(AgentDir, "instances")) ? Directory.GetDirectories(Path.Combine(AgentDir, "instances")).Length : 0;

    [Fact]
    public async Task A_removed_node_stops_its_containers_sets_its_credentials_aside_and_takes_no_more_traffic()
    {
        var image = await _cluster.ImageAsync("web", Web);
        await _cluster.CreateAppAsync("web", image);
        await _cluster.WaitForInstancesAsync("web", 1);
        // Positive control: the app answers through the router and the node is Ready with its container.
        await Cluster.WaitAsync(async () => (await _cluster.ThroughRouterAsync("web")).StatusCode == HttpStatusCode.OK, 20, "the app through the router");
        Assert.Equal(1, Bundles());
        Assert.Equal("Ready", await _cluster.NodeStateAsync(Node));

        await _cluster.Admin.DeleteAsync($"/api/v1/nodes/{Node}").ShouldBeAsync(HttpStatusCode.NoContent);

        await Cluster.WaitAsync(() => Task.FromResult(Bundles() == 0 && File.Exists(Path.Combine(AgentDir, "credentials.json.revoked"))
            && !File.Exists(Path.Combine(AgentDir, "credentials.json"))), 60, () => $"the agent to stop its container and set its credentials aside\n{_cluster.AgentLogs()}");
        Assert.Contains("was removed from the cluster", _cluster.AgentLogs());
        // No node is left to run the app: the router has no instance for it, and the removed node stays gone.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await _cluster.ThroughRouterAsync("web")).StatusCode);
        Assert.Null(await _cluster.NodeStateAsync(Node));
        Assert.Empty(await _cluster.InstancesAsync("web"));
    }
}
