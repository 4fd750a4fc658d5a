using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;
using Platform.Contracts;

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

    /// <remarks>
    /// The app page's chart: what the router answered, counted per app by status class and latency, written by each
    /// replica and summed by the API. Another team's app sees none of it; a row another replica wrote adds up.
    /// </remarks>
    [Theory]
    [InlineData(Provider.Sqlite)]
    [InlineData(Provider.Postgres)]
    public async Task The_request_chart_counts_each_apps_answers_by_status_class_and_latency_summed_over_replicas(Provider provider)
    {
        await using var host = new PlatformHost(provider);
        var admin = host.Admin();
        foreach (var team in new[] { "rc", "other" })
        {
            await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
            await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
            await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = "web", image = $"{team}/p/web:1", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        }
        var (backend, port) = await StandIns.BackendAsync("web");
        await using var web = backend;
        await StandIns.RunAsync(host, "rc", "web", port);
        var router = host.Services.GetRequiredService<Router>().Address!;
        using var client = new HttpClient();
        async Task<HttpStatusCode> GetAsync(string query)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(router, query));
            request.Headers.Host = "web-p-rc.apps.localhost";
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }
        // Until the route table has the app the router answers 404 (no app: not the app's, not counted); once it has the
        // app but not yet its instance, 503 for the app (counted, as 5xx).
        var (sent, early5xx) = (0, 0L);
        await Nodes.Cluster.WaitAsync(async () =>
        {
            var status = await GetAsync("/");
            if (status != HttpStatusCode.NotFound) sent++;
            if ((int)status >= 500) early5xx++;
            return status == HttpStatusCode.OK;
        }, 10, "the app routed");

        for (var i = 0; i < 19; i++, sent++) Assert.Equal(HttpStatusCode.OK, await GetAsync("/"));
        for (var i = 0; i < 5; i++, sent++) Assert.Equal(HttpStatusCode.NotFound, await GetAsync("/?status=404"));
        for (var i = 0; i < 3; i++, sent++) Assert.Equal(HttpStatusCode.InternalServerError, await GetAsync("/?status=500"));
        for (var i = 0; i < 4; i++, sent++) Assert.Equal(HttpStatusCode.OK, await GetAsync("/?delayMs=300"));
        Assert.Equal(HttpStatusCode.PermanentRedirect, await GetAsync("/?status=308"));
        sent++;

        const string series = "/api/v1/teams/rc/projects/p/apps/web/requests";
        RequestSeriesResponse? seen = null;
        await Nodes.Cluster.WaitAsync(async () =>
        {
            seen = await admin.GetFromJsonAsync<RequestSeriesResponse>(series);
            return seen!.Requests >= sent;
        }, 30, () => $"the router's counts written (saw {seen?.Requests} of {sent})");
        Assert.Equal(sent, seen!.Requests);
        Assert.Equal((60, 60), (seen.StepSeconds, seen.Points.Count));
        Assert.Equal(sent, seen.Points.Sum(p => p.Requests));
        Assert.Equal((24L, 1L, 5L, 3L + early5xx), (seen.Points.Sum(p => p.Status2xx), seen.Points.Sum(p => p.Status3xx), seen.Points.Sum(p => p.Status4xx), seen.Points.Sum(p => p.Status5xx)));
        Assert.Equal(3 + early5xx, seen.Status5xx);
        Assert.InRange(seen.P50Ms!.Value, 0, 25);
        Assert.InRange(seen.P99Ms!.Value, 250, 500);   // 4 of some 33 took 300 ms: the 99th percentile is among them
        Assert.True(seen.Points.Zip(seen.Points.Skip(1)).All(p => p.Second.At - p.First.At == TimeSpan.FromMinutes(1)), "one point a minute, oldest first");
        Assert.True(seen.Points[^1].At <= DateTime.UtcNow && DateTime.UtcNow < seen.Points[^1].At.AddMinutes(1), "the last point is this minute");

        // Another team's app of the same name has its own (empty) series.
        var other = await admin.GetFromJsonAsync<RequestSeriesResponse>("/api/v1/teams/other/projects/p/apps/web/requests?window=24h");
        Assert.Equal((0L, 900, 96), (other!.Requests, other.StepSeconds, other.Points.Count));
        Assert.Null(other.P99Ms);

        // Another replica's row for this minute adds up with this one's.
        using (var scope = host.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<Platform.Data.PlatformDbContext>();
            var appId = db.Apps.Single(a => a.Name == "web" && a.Project!.Team!.Name == "rc").Id;
            db.AppRequestMinutes.Add(new Platform.Data.AppRequestMinute
            {
                AppId = appId, Minute = seen.Points[^1].At, Replica = Guid.NewGuid(), Status5xx = 10, Latency = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            });
            await db.SaveChangesAsync();
        }
        var summed = await admin.GetFromJsonAsync<RequestSeriesResponse>(series + "?window=6h");
        Assert.Equal((sent + 10, 13L + early5xx, 300), (summed!.Requests, summed.Status5xx, summed.StepSeconds));

        // Housekeeping deletes rows past the longest window (a day and an hour), and only those.
        using (var scope = host.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<Platform.Data.PlatformDbContext>();
            var appId = db.Apps.Single(a => a.Name == "web" && a.Project!.Team!.Name == "rc").Id;
            db.AppRequestMinutes.Add(new Platform.Data.AppRequestMinute { AppId = appId, Minute = seen.Points[^1].At.AddHours(-26), Replica = Guid.NewGuid(), Status2xx = 1, Latency = [1] });
            await db.SaveChangesAsync();
            var report = await scope.ServiceProvider.GetRequiredService<Api.Jobs.Housekeeping>().RunAsync(CancellationToken.None);
            Assert.Equal(1, report.RequestMinutes);
        }
        Assert.Equal(sent + 10, (await admin.GetFromJsonAsync<RequestSeriesResponse>(series))!.Requests);

        // An unknown window is refused naming the field.
        using var bad = await admin.GetAsync(series + "?window=7d");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
        Assert.Contains("window", await bad.Content.ReadAsStringAsync());
    }
}
