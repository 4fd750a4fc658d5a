using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Nodes;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Tests.Nodes.Hostile;

/// <summary>
/// A compromised node, played over HTTP with the real credentials a join gives: it tries to move its
/// address onto another node's, to report another node's instances, and to carry on after a platform
/// admin removed it. Each refusal sits beside the same call succeeding where it should.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class NodeTrustAttackTests : IAsyncLifetime
{
    private readonly PlatformHost _host = new(Provider.Sqlite);
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private sealed record JoinedNode(string Name, string Address, string ClientId, string ClientSecret, HttpClient Api);

    private async Task<JsonElement> JoinTokenAsync() =>
        await _host.Admin().PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created);

    private async Task<HttpResponseMessage> TokenAsync(string clientId, string secret) =>
        await _host.Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret, ["scope"] = "platform",
        }));

    private async Task<JoinedNode> JoinAsync(string name, string address)
    {
        var join = await JoinTokenAsync();
        var joined = await _host.Http().PostAsJsonAsync("/api/v1/nodes/join",
            new { joinToken = join.GetProperty("token").GetString(), name, address }).ShouldBeAsync(HttpStatusCode.OK);
        var (id, secret) = (joined.GetProperty("clientId").GetString()!, joined.GetProperty("clientSecret").GetString()!);
        var token = await (await TokenAsync(id, secret)).ReadJsonAsync();
        return new JoinedNode(name, address, id, secret, _host.Http(token.GetProperty("access_token").GetString()));
    }

    private static object Beat(string? address, string? controlKey = null) => new
    {
        address, capacity = new { memoryMiB = 4096, cpuMillicores = 4000 }, runningInstances = 0, controlPort = controlKey is null ? (int?)null : 7070, controlKey,
    };

    private async Task<string?> AddressOfAsync(string node)
    {
        var nodes = await _host.Admin().GetFromJsonAsync<JsonElement>("/api/v1/nodes");
        return nodes.GetProperty("items").EnumerateArray().Single(n => n.GetProperty("name").GetString() == node).GetProperty("address").GetString();
    }

    private async Task<T> DbAsync<T>(Func<PlatformDbContext, Task<T>> query)
    {
        using var scope = _host.Services.CreateScope();
        return await query(scope.ServiceProvider.GetRequiredService<PlatformDbContext>());
    }

    /// <summary>Two joined nodes that have sent a heartbeat (Ready: the scheduler uses and keeps them) and a team with project p.</summary>
    private async Task<(JoinedNode A, JoinedNode B, string Team)> TwoReadyNodesAndATeamAsync(string addressA, string addressB)
    {
        var nodes = new[] { await JoinAsync("a-" + _run, addressA), await JoinAsync("b-" + _run, addressB) };
        foreach (var n in nodes)
            await n.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(n.Address)).ShouldBeAsync(HttpStatusCode.OK);
        var team = "t-" + _run;
        await _host.Admin().PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await _host.Admin().PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        return (nodes[0], nodes[1], team);
    }

    [Fact]
    public async Task A_node_cannot_move_its_address_onto_another_nodes_by_heartbeat_or_by_joining_with_it()
    {
        var a = await JoinAsync("a-" + _run, "192.0.2.10");
        var b = await JoinAsync("b-" + _run, "192.0.2.11");

        // Positive control: the address it joined with (in another spelling, too) and no address at all are accepted.
        await a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat("192.0.2.10")).ShouldBeAsync(HttpStatusCode.OK);
        await a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(null)).ShouldBeAsync(HttpStatusCode.OK);

        // The attack: node a claims b's address (so the router would send b's traffic to a) or any other one.
        foreach (var forged in new[] { b.Address, "127.0.0.1", "api.internal", "::1" })
        {
            var refused = await a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(forged)).ShouldBeAsync(HttpStatusCode.Conflict);
            Assert.True(refused.GetProperty("errors").TryGetProperty("address", out _), forged);
        }
        Assert.Equal(a.Address, await AddressOfAsync(a.Name));
        Assert.Equal(b.Address, await AddressOfAsync(b.Name));

        // A node joining with another node's address (a stolen join token) is refused; a free address joins.
        var token = (await JoinTokenAsync()).GetProperty("token").GetString();
        var taken = await _host.Http().PostAsJsonAsync("/api/v1/nodes/join", new { joinToken = token, name = "c-" + _run, address = b.Address })
            .ShouldBeAsync(HttpStatusCode.Conflict);
        Assert.True(taken.GetProperty("errors").TryGetProperty("address", out _));
        await JoinAsync("c-" + _run, "192.0.2.12");
        // Joining needs an address, and a real one.
        foreach (var bad in new[] { null, "", "a b", "x\ny", "http://192.0.2.13/", new string('a', 300) })
        {
            var rejected = await _host.Http().PostAsJsonAsync("/api/v1/nodes/join",
                new { joinToken = (await JoinTokenAsync()).GetProperty("token").GetString(), name = "d-" + _run, address = bad })
                .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
            Assert.True(rejected.GetProperty("errors").TryGetProperty("address", out _), bad);
        }
    }

    [Fact]
    public async Task A_node_reporting_status_for_another_nodes_instance_changes_nothing()
    {
        var (a, b, team) = await TwoReadyNodesAndATeamAsync("192.0.2.20", "192.0.2.21");
        var admin = _host.Admin();
        // An image never pushed: the scheduler leaves the two rows below as they are.
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = "web", image = $"{team}/p/web:1", instances = 2 })
            .ShouldBeAsync(HttpStatusCode.Created);
        var (onA, onB) = await DbAsync(async db =>
        {
            var app = await db.Apps.SingleAsync(x => x.Name == "web" && x.Project!.Team!.Name == team);
            var nodes = await db.Nodes.Where(n => n.Name == a.Name || n.Name == b.Name).ToDictionaryAsync(n => n.Name, n => n.Id);
            Instance Pending(Guid node) => new()
            {
                Id = Guid.NewGuid(), AppId = app.Id, NodeId = node, ImageRepository = $"{team}/p/web", ImageDigest = "sha256:" + new string('0', 64),
                Generation = 1, CreatedAt = DateTime.UtcNow, UpdatedAt = DateTime.UtcNow,
            };
            var (x, y) = (Pending(nodes[a.Name]), Pending(nodes[b.Name]));
            db.Instances.AddRange(x, y);
            await db.SaveChangesAsync();
            return (x.Id, y.Id);
        });
        object Running(Guid id, int port) => new { instances = new[] { new { id, state = "Ready", restarts = 0, hostPort = port } } };
        Task<Instance> RowAsync(Guid id) => DbAsync(db => db.Instances.AsNoTracking().SingleAsync(i => i.Id == id));

        // The attack: b says a's instance runs on a port of b's choosing (the router would follow the row).
        await b.Api.PostAsJsonAsync("/api/v1/nodes/status", Running(onA, 20999)).ShouldBeAsync(HttpStatusCode.NoContent);
        var untouched = await RowAsync(onA);
        Assert.Equal(InstanceStates.Pending, untouched.State);
        Assert.Null(untouched.HostPort);
        // Nor does b's desired state hold anything of a's.
        var desired = await b.Api.GetFromJsonAsync<JsonElement>("/api/v1/nodes/desired");
        Assert.Equal([onB], desired.GetProperty("instances").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()));

        // Positive control: each node's report about its own instance lands.
        await a.Api.PostAsJsonAsync("/api/v1/nodes/status", Running(onA, 20001)).ShouldBeAsync(HttpStatusCode.NoContent);
        await b.Api.PostAsJsonAsync("/api/v1/nodes/status", Running(onB, 20002)).ShouldBeAsync(HttpStatusCode.NoContent);
        Assert.Equal((InstanceStates.Ready, 20001), await RowAsync(onA) is var x ? (x.State, x.HostPort) : default);
        Assert.Equal((InstanceStates.Ready, 20002), await RowAsync(onB) is var y ? (y.State, y.HostPort) : default);
    }

    [Fact]
    public async Task The_control_key_a_node_reports_is_not_kept_in_clear_in_the_database()
    {
        var a = await JoinAsync("a-" + _run, "192.0.2.30");
        var key = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(a.Address, key)).ShouldBeAsync(HttpStatusCode.OK);

        // What a reader of the database (a backup, a replica) sees of the node row: nothing that opens the agent.
        var stored = await DbAsync(db => db.Database.SqlQueryRaw<string>(
            "SELECT \"ProtectedControlKey\" AS \"Value\" FROM nodes WHERE \"Name\" = {0}", a.Name).SingleAsync());
        Assert.DoesNotContain(key, stored, StringComparison.OrdinalIgnoreCase);
        var row = await DbAsync(db => db.Nodes.AsNoTracking().SingleAsync(n => n.Name == a.Name));
        foreach (var column in typeof(Node).GetProperties().Select(p => p.GetValue(row)?.ToString() ?? ""))
            Assert.DoesNotContain(key, column, StringComparison.OrdinalIgnoreCase);
        // Positive control: the Api itself, with its data-protection keys, gets the key back to present it.
        Assert.Equal(key, _host.Services.GetRequiredService<NodeControlKeys>().Unprotect(stored));
    }

    /// <summary>A one-layer image in the registry under the team's repository, so the placement has something to place.</summary>
    private async Task<string> PushImageAsync(string repository)
    {
        var registry = RegistryHttp.Basic(_host, PlatformHost.AdminToken);
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"true\"]}}");
        var layer = Encoding.UTF8.GetBytes("not unpacked by anyone in this test");
        var manifest = JsonSerializer.Serialize(new
        {
            schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = await RegistryHttp.PushBlobAsync(registry, repository, config), size = config.Length },
            layers = new[] { new { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = await RegistryHttp.PushBlobAsync(registry, repository, layer), size = layer.Length } },
        });
        var put = await registry.PutAsync($"/v2/{repository}/manifests/1", new StringContent(manifest, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        return repository + ":1";
    }

    private async Task<List<Guid>> NodesOfAsync(string team, string app) =>
        await DbAsync(db => db.Instances.Where(i => i.App!.Name == app && i.App.Project!.Team!.Name == team).Select(i => i.NodeId).ToListAsync());

    [Fact]
    public async Task A_node_with_nothing_placed_on_it_is_removed_at_once()
    {
        // Nothing to reschedule: the removal asks for no placement pass, and does not wait for one that never comes.
        var node = await JoinAsync("empty-" + _run, "192.0.2.50");
        using var admin = _host.Admin();
        admin.Timeout = TimeSpan.FromSeconds(20);
        await admin.DeleteAsync($"/api/v1/nodes/{node.Name}").ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.DeleteAsync($"/api/v1/nodes/{node.Name}").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_removed_node_is_refused_with_the_token_it_still_holds_and_with_its_credentials_and_its_replicas_move()
    {
        var (a, b, team) = await TwoReadyNodesAndATeamAsync("192.0.2.40", "192.0.2.41");
        var admin = _host.Admin();
        var image = await PushImageAsync($"{team}/p/web");
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = "web", image, instances = 2, memoryMiB = 64 })
            .ShouldBeAsync(HttpStatusCode.Created);
        var ids = await DbAsync(db => db.Nodes.Where(n => n.Name == a.Name || n.Name == b.Name).ToDictionaryAsync(n => n.Name, n => n.Id));
        await Cluster.WaitAsync(async () => (await NodesOfAsync(team, "web")).Order().SequenceEqual(ids.Values.Order()), 20,
            "one replica on each node");

        // Who may remove a node: a team's owner may not (and nothing changes), a platform admin may.
        var owner = _host.Http(await _host.UserTokenAsync($"owner-{_run}@example.com"));
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/owner-{_run}@example.com", new { role = "owner" }).ShouldBeAsync(HttpStatusCode.OK);
        await owner.DeleteAsync($"/api/v1/nodes/{a.Name}").ShouldBeAsync(HttpStatusCode.Forbidden);
        await a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(a.Address)).ShouldBeAsync(HttpStatusCode.OK);
        await admin.DeleteAsync($"/api/v1/nodes/{a.Name}").ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.DeleteAsync($"/api/v1/nodes/{a.Name}").ShouldBeAsync(HttpStatusCode.NotFound);

        // The removed node's access token is still unexpired: every node endpoint refuses it, saying why.
        foreach (var call in new Func<Task<HttpResponseMessage>>[]
        {
            () => a.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(a.Address)),
            () => a.Api.GetAsync("/api/v1/nodes/desired"),
            () => a.Api.PostAsJsonAsync("/api/v1/nodes/status", new { instances = Array.Empty<object>() }),
        })
        {
            var refused = await call().ShouldBeAsync(HttpStatusCode.Forbidden);
            Assert.Equal(ProblemTypes.NodeRevoked, refused.GetProperty("type").GetString());
        }
        // Its credentials get no new token; the other node's still do (and its endpoints answer).
        var noToken = await TokenAsync(a.ClientId, a.ClientSecret);
        Assert.Equal("invalid_client", (await noToken.ReadJsonAsync()).GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(b.ClientId, b.ClientSecret)).StatusCode);
        await b.Api.PostAsJsonAsync("/api/v1/nodes/heartbeat", Beat(b.Address)).ShouldBeAsync(HttpStatusCode.OK);
        // Nor may it pull from the registry any more; the other node may.
        Task<HttpResponseMessage> RegistryTokenAsync(JoinedNode n)
        {
            var registry = _host.Http();
            registry.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{n.ClientId}:{n.ClientSecret}")));
            return registry.GetAsync($"/registry/token?service=platform&scope=repository:{team}/p/web:pull");
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await RegistryTokenAsync(a)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await RegistryTokenAsync(b)).StatusCode);

        // Its replica is placed on the node that is left, and the node list no longer has it.
        await Cluster.WaitAsync(async () => await NodesOfAsync(team, "web") is { Count: 2 } nodes && nodes.All(n => n == ids[b.Name]), 20,
            "both replicas on the remaining node");
        var listed = await admin.GetFromJsonAsync<JsonElement>("/api/v1/nodes");
        Assert.DoesNotContain(listed.GetProperty("items").EnumerateArray(), n => n.GetProperty("name").GetString() == a.Name);
    }
}
