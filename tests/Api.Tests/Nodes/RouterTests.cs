using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Routing;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Tests.Nodes;

/// <summary>
/// The router against stand-in instances on loopback (small Kestrel servers registered as the running
/// instances of an app on a node): round robin, the original Host and X-Forwarded headers, WebSocket
/// upgrades passed through, and a route change followed as soon as the route table has it.
/// </summary>
public sealed class RouterTests
{
    [Fact]
    public async Task The_router_balances_keeps_the_host_passes_websockets_and_follows_changes()
    {
        await using var host = new PlatformHost(Provider.Sqlite);
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "rtr" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/rtr/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        // Two instances of an image never pushed: the scheduler keeps the stand-ins below and places nothing new.
        await admin.PostAsJsonAsync("/api/v1/teams/rtr/projects/p/apps", new { name = "ws", image = "rtr/p/ws:1", instances = 2 }).ShouldBeAsync(HttpStatusCode.Created);
        var (a, portA) = await StandIns.BackendAsync("a");
        var (b, portB) = await StandIns.BackendAsync("b");
        await using var _a = a;
        await using var _b = b;

        var second = (await StandIns.RunAsync(host, "rtr", "ws", portA, portB))[1];
        var router = host.Services.GetRequiredService<Router>().Address!;
        const string appHost = "ws-p-rtr.apps.localhost";
        using var client = new HttpClient();
        async Task<string> GetAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, router);
            request.Headers.Host = appHost;
            using var response = await client.SendAsync(request);
            return response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadAsStringAsync() : $"({(int)response.StatusCode})";
        }

        var seen = new List<string>();
        await Cluster.WaitAsync(async () => { seen.Add(await GetAsync()); return seen.Any(s => s.StartsWith("a ")) && seen.Any(s => s.StartsWith("b ")); },
            10, () => "both stand-ins: " + string.Join(" | ", seen.TakeLast(4)));
        var one = await GetAsync();
        Assert.Contains($"host={appHost}", one);
        Assert.Contains("xff=127.0.0.1", one);
        Assert.Contains($"xfh={appHost}", one);

        // WebSockets pass through the router.
        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("Host", appHost);
            await socket.ConnectAsync(new Uri($"ws://{router.Authority}/"), CancellationToken.None);
            await socket.SendAsync(Encoding.UTF8.GetBytes("ping"), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1024];
            var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Matches("^[ab] echoes ping$", Encoding.UTF8.GetString(buffer, 0, received.Count));
        }

        // An instance that stops running leaves the rotation. The row changes behind the Api's back (no signal),
        // so the route table's own periodic refresh must notice; the moment it has, no request reaches b any more.
        // How long that takes is a figure of bench/RuntimeBench (docs/performance.md), not a threshold here.
        using (var scope = host.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            await db.Instances.Where(i => i.Id == second).ExecuteUpdateAsync(s => s.SetProperty(i => i.State, InstanceStates.Restarting));
        }
        var table = host.Services.GetRequiredService<RouteTable>();
        await Cluster.WaitAsync(() => Task.FromResult(table.Find(appHost)!.Destinations.All(d => !d.EndsWith($":{portB}/", StringComparison.Ordinal))),
            10, () => "b out of the route table: " + string.Join(", ", table.Find(appHost)!.Destinations));
        var answers = new List<string>();
        for (var i = 0; i < 4; i++) answers.Add(await GetAsync());
        Assert.All(answers, s => Assert.StartsWith("a ", s));
    }
}
