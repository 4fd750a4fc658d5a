using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Routing;

/// <summary>What users expect of the router besides routing: a request id end to end, limits on bodies and heads, and per-app request metrics.</summary>
public sealed class RouterFeaturesTests
{
    [Fact]
    public async Task Requests_carry_an_id_to_the_app_and_back_are_held_to_the_size_limits_and_are_counted_per_app_in_metrics()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?> { ["Platform:Ingress:MaxRequestBodyBytes"] = "1024" });
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "rf" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/rf/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/rf/projects/p/apps", new { name = "web", image = "rf/p/web:1", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var (backend, port) = await StandIns.BackendAsync("web");
        await using var web = backend;
        await StandIns.RunAsync(host, "rf", "web", port);
        var router = host.Services.GetRequiredService<Router>().Address!;
        using var client = new HttpClient();
        HttpRequestMessage To(HttpMethod method, string? id = null, HttpContent? content = null)
        {
            var request = new HttpRequestMessage(method, router) { Content = content };
            request.Headers.Host = "web-p-rf.apps.localhost";
            if (id is not null) request.Headers.TryAddWithoutValidation("X-Request-Id", id);
            return request;
        }
        await Nodes.Cluster.WaitAsync(async () => (await client.SendAsync(To(HttpMethod.Get))).StatusCode == HttpStatusCode.OK, 10, "the app routed");

        // The client's id goes to the app and comes back; without one the router makes one.
        using var given = await client.SendAsync(To(HttpMethod.Get, "req-42"));
        Assert.Contains("rid=req-42", await given.Content.ReadAsStringAsync());
        Assert.Equal("req-42", given.Headers.GetValues("X-Request-Id").Single());
        using var made = await client.SendAsync(To(HttpMethod.Get));
        var id = made.Headers.GetValues("X-Request-Id").Single();
        Assert.Matches("^[0-9a-f]{32}$", id);
        Assert.Contains($"rid={id}", await made.Content.ReadAsStringAsync());
        using var junk = await client.SendAsync(To(HttpMethod.Get, new string('x', 500)));   // an id too long to trust is replaced
        Assert.Matches("^[0-9a-f]{32}$", junk.Headers.GetValues("X-Request-Id").Single());

        // Bodies over the limit are refused before the app sees them (413), as are request heads over 32 KiB (431);
        // a body within it passes (the control).
        using var small = await client.SendAsync(To(HttpMethod.Post, content: new ByteArrayContent(new byte[1000])));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        using var large = await client.SendAsync(To(HttpMethod.Post, content: new ByteArrayContent(new byte[4096])));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        var huge = To(HttpMethod.Get);
        huge.Headers.TryAddWithoutValidation("X-Filler", new string('a', 40 * 1024));
        using var tooBig = await client.SendAsync(huge);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, tooBig.StatusCode);

        // Per-app figures in /metrics (platform admins): requests by status class and a latency histogram.
        string metrics = "";
        await Nodes.Cluster.WaitAsync(async () =>
        {
            metrics = await admin.GetStringAsync("/metrics");
            return metrics.Contains("platform_router_requests_total{", StringComparison.Ordinal) && metrics.Contains("platform_router_request_duration_seconds_bucket{", StringComparison.Ordinal);
        }, 15, () => "router metrics: " + string.Join("\n", metrics.Split('\n').Where(l => l.Contains("router")).Take(10)));
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("platform_router_requests_total{", StringComparison.Ordinal) && l.Contains("app=\"rf/p/web\"") && l.Contains("code=\"2xx\""));
    }
}
