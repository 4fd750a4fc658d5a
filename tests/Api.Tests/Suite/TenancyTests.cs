using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;
using Platform.Data;

namespace Platform.Api.Tests.Suite;

/// <summary>Teams, projects, apps, members and quotas through the HTTP API; the same suite runs on both providers.</summary>
public abstract class TenancyTests(PlatformHost host)
{
    protected PlatformHost Host { get; } = host;
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_team_project_and_app_are_created_read_updated_and_deleted()
    {
        var admin = Host.Admin();
        var team = Unique("crud");
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "web" }).ShouldBeAsync(HttpStatusCode.Created);
        var app = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps",
            new { name = "shop", image = "library/busybox:1.36", instances = 2, memoryMiB = 128, port = 8080, env = new Dictionary<string, string> { ["GREETING"] = "hi" } })
            .ShouldBeAsync(HttpStatusCode.Created);
        var routerPort = Host.Services.GetRequiredService<Platform.Api.Routing.Router>().Address!.Port;
        Assert.Equal($"http://shop-web-{team}.apps.localhost:{routerPort}", app.GetProperty("url").GetString());
        Assert.Equal(JsonValueKindNull, app.GetProperty("gitUrl").ValueKind);

        var patched = await admin.PatchAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps/shop",
            new { instances = 3, env = new Dictionary<string, string?> { ["GREETING"] = null, ["MODE"] = "prod" } })
            .ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(3, patched.GetProperty("instances").GetInt32());
        Assert.False(patched.GetProperty("env").TryGetProperty("GREETING", out _));
        Assert.Equal("prod", patched.GetProperty("env").GetProperty("MODE").GetString());

        var fromGit = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps", new { name = "api" })
            .ShouldBeAsync(HttpStatusCode.Created);
        Assert.EndsWith($"/git/{team}/web/api.git", fromGit.GetProperty("gitUrl").GetString());

        var team_ = await admin.GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(4, team_.GetProperty("quota").GetProperty("instances").GetProperty("used").GetInt64());
        Assert.Equal(3 * 128 + 256, team_.GetProperty("quota").GetProperty("memoryMiB").GetProperty("used").GetInt64());

        await admin.DeleteAsync($"/api/v1/teams/{team}/projects/web/apps/shop").ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.GetAsync($"/api/v1/teams/{team}/projects/web/apps/shop").ShouldBeAsync(HttpStatusCode.NotFound);
        await admin.DeleteAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    private const System.Text.Json.JsonValueKind JsonValueKindNull = System.Text.Json.JsonValueKind.Null;

    [Fact]
    public async Task Names_are_unique_in_their_scope_and_must_be_dns_labels()
    {
        var admin = Host.Admin();
        var team = Unique("names");
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        var taken = await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Conflict);
        Assert.True(taken.GetProperty("errors").TryGetProperty("name", out _));
        foreach (var bad in new[] { "Upper", "-lead", "trail-", "under_score", new string('a', 64), "", "dot.ted" })
        {
            var problem = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = bad })
                .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
            Assert.True(problem.GetProperty("errors").TryGetProperty("name", out _), bad);
        }
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Lists_are_paged_with_a_cursor()
    {
        var admin = Host.Admin();
        var team = Unique("pages");
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", Quota(apps: 100, instances: 100, memoryMiB: 100_000))
            .ShouldBeAsync(HttpStatusCode.OK);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        for (var i = 0; i < 7; i++)
            await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = $"app{i}", instances = 0 })
                .ShouldBeAsync(HttpStatusCode.Created);
        var names = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await admin.GetAsync($"/api/v1/teams/{team}/projects/p/apps?limit=3" + (cursor is null ? "" : "&after=" + cursor))
                .ShouldBeAsync(HttpStatusCode.OK);
            names.AddRange(page.GetProperty("items").EnumerateArray().Select(a => a.GetProperty("name").GetString()!));
            cursor = page.GetProperty("next").GetString();
            pages++;
        } while (cursor is not null);
        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"app{i}"), names);
        await admin.GetAsync($"/api/v1/teams/{team}/projects/p/apps?limit=0").ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
    }

    internal static object Quota(long memoryMiB = 4096, long cpuMillicores = 4000, long instances = 10, long apps = 10,
        long projects = 5, long registryGiB = 10, long concurrentBuilds = 2) =>
        new { memoryMiB, cpuMillicores, instances, apps, projects, registryGiB, concurrentBuilds };

    [Fact]
    public async Task Quotas_refuse_what_does_not_fit_with_the_figures_and_always_allow_scaling_down()
    {
        var admin = Host.Admin();
        var team = Unique("quota");
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", Quota(memoryMiB: 1024, instances: 4, projects: 2))
            .ShouldBeAsync(HttpStatusCode.OK);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "a" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "b" }).ShouldBeAsync(HttpStatusCode.Created);
        var third = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "c" })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Equal("quota-exceeded", third.GetProperty("type").GetString());

        // Project quotas split the team's: 600 + 600 > 1024.
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/projects/a/quota", new { memoryMiB = 600 }).ShouldBeAsync(HttpStatusCode.OK);
        var split = await admin.PutAsJsonAsync($"/api/v1/teams/{team}/projects/b/quota", new { memoryMiB = 600 })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Equal("quota-exceeded", split.GetProperty("type").GetString());

        // Project limit first: 3 × 256 = 768 > 600.
        var refused = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/a/apps", new { name = "x", instances = 3, memoryMiB = 256 })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        var figure = refused.GetProperty("quota").EnumerateArray().Single(f => f.GetProperty("resource").GetString() == "memoryMiB");
        Assert.Equal("project", figure.GetProperty("scope").GetString());
        Assert.Equal(768, figure.GetProperty("asked").GetInt64());
        Assert.Equal(0, figure.GetProperty("used").GetInt64());
        Assert.Equal(600, figure.GetProperty("limit").GetInt64());

        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/a/apps", new { name = "x", instances = 2, memoryMiB = 256 })
            .ShouldBeAsync(HttpStatusCode.Created);
        // Team instances: 2 used + 3 asked > 4.
        var scale = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/b/apps", new { name = "y", instances = 3, memoryMiB = 64 })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains(scale.GetProperty("quota").EnumerateArray(), f => f.GetProperty("resource").GetString() == "instances" && f.GetProperty("scope").GetString() == "team");

        // Lowering the team quota below usage blocks growth but scaling down still works.
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", Quota(memoryMiB: 100, instances: 1, projects: 2)).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PatchAsJsonAsync($"/api/v1/teams/{team}/projects/a/apps/x", new { instances = 3 }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        await admin.PatchAsJsonAsync($"/api/v1/teams/{team}/projects/a/apps/x", new { instances = 1 }).ShouldBeAsync(HttpStatusCode.OK);
        var usage = await admin.GetAsync($"/api/v1/teams/{team}/projects/a").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(256, usage.GetProperty("quota").GetProperty("memoryMiB").GetProperty("used").GetInt64());
        Assert.Equal(600, usage.GetProperty("quota").GetProperty("memoryMiB").GetProperty("limit").GetInt64());
    }

    [Fact]
    public async Task Concurrent_admissions_never_overshoot_a_quota()
    {
        var admin = Host.Admin();
        var team = Unique("race");
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", Quota(apps: 5, instances: 100, memoryMiB: 100_000)).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            Host.Admin().PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = $"a{i}", instances = 1 })));
        Assert.Equal(5, results.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(15, results.Count(r => r.StatusCode == HttpStatusCode.UnprocessableEntity));

        // The usage counters admission reads stay equal to what the apps add up to.
        var created = results.Where(r => r.StatusCode == HttpStatusCode.Created).Select(r => r.Headers.Location!.ToString()).ToList();
        await admin.DeleteAsync(created[0]).ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.PatchAsJsonAsync(created[1], new { instances = 3 }).ShouldBeAsync(HttpStatusCode.OK);
        var usage = (await admin.GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.OK)).GetProperty("quota");
        Assert.Equal(4, usage.GetProperty("apps").GetProperty("used").GetInt64());
        Assert.Equal(6, usage.GetProperty("instances").GetProperty("used").GetInt64());
        await using var scope = Host.Services.CreateAsyncScope();
        var teamId = await scope.ServiceProvider.GetRequiredService<PlatformDbContext>().Teams.Where(t => t.Name == team).Select(t => t.Id).FirstAsync();
        Assert.False(await scope.ServiceProvider.GetRequiredService<Platform.Api.Quotas.QuotaService>().RecomputeAsync(teamId, CancellationToken.None));
    }

    [Fact]
    public async Task Members_are_managed_below_ones_own_role_and_a_team_keeps_an_owner()
    {
        var admin = Host.Admin();
        var team = Unique("members");
        var adminEmail = team + "-admin@example.com";
        var devEmail = team + "-dev@example.com";
        var teamAdmin = Host.Http(await Host.UserTokenAsync(adminEmail));
        var dev = Host.Http(await Host.UserTokenAsync(devEmail));
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{adminEmail}", new { role = "admin" }).ShouldBeAsync(HttpStatusCode.OK);
        await teamAdmin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{devEmail}", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        await teamAdmin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{devEmail}", new { role = "owner" }).ShouldBeAsync(HttpStatusCode.Forbidden);
        await teamAdmin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{PlatformHost.AdminEmail}", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.Forbidden);
        await dev.PutAsJsonAsync($"/api/v1/teams/{team}/members/{adminEmail}", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.Forbidden);
        var badRole = await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{devEmail}", new { role = "superuser" }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.True(badRole.GetProperty("errors").TryGetProperty("role", out _));
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/nobody@example.com", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        // The creator is the only owner: cannot step down or be removed.
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{PlatformHost.AdminEmail}", new { role = "admin" }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        await admin.DeleteAsync($"/api/v1/teams/{team}/members/{PlatformHost.AdminEmail}").ShouldBeAsync(HttpStatusCode.UnprocessableEntity);

        var members = await dev.GetAsync($"/api/v1/teams/{team}/members").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(3, members.GetProperty("items").GetArrayLength());
        var me = await dev.GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Contains(me.GetProperty("roles").EnumerateArray(), r => r.GetProperty("team").GetString() == team && r.GetProperty("role").GetString() == "developer");
        await teamAdmin.DeleteAsync($"/api/v1/teams/{team}/members/{devEmail}").ShouldBeAsync(HttpStatusCode.NoContent);
        await dev.GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Viewers_see_apps_with_environment_values_hidden()
    {
        var admin = Host.Admin();
        var team = Unique("secrets");
        var viewerEmail = team + "-viewer@example.com";
        var viewer = Host.Http(await Host.UserTokenAsync(viewerEmail));
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/p/apps", new { name = "a", env = new Dictionary<string, string> { ["DB_PASSWORD"] = "s3cret" } }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{viewerEmail}", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.OK);
        var seen = await viewer.GetAsync($"/api/v1/teams/{team}/projects/p/apps/a").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("********", seen.GetProperty("env").GetProperty("DB_PASSWORD").GetString());
        var full = await admin.GetAsync($"/api/v1/teams/{team}/projects/p/apps/a").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("s3cret", full.GetProperty("env").GetProperty("DB_PASSWORD").GetString());
    }

    [Fact]
    public async Task Every_change_is_audited_with_actor_target_and_outcome()
    {
        var admin = Host.Admin();
        var team = Unique("audit");
        var devEmail = team + "-dev@example.com";
        var dev = Host.Http(await Host.UserTokenAsync(devEmail));
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{devEmail}", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        await dev.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Forbidden);
        await dev.GetAsync($"/api/v1/teams/{team}/audit").ShouldBeAsync(HttpStatusCode.Forbidden);
        var log = await admin.GetAsync($"/api/v1/teams/{team}/audit").ShouldBeAsync(HttpStatusCode.OK);
        var events = log.GetProperty("items").EnumerateArray().ToList();
        var denied = events.First();
        Assert.Equal("projects.create", denied.GetProperty("action").GetString());
        Assert.Equal(devEmail, denied.GetProperty("actor").GetString());
        Assert.Equal("denied", denied.GetProperty("outcome").GetString());
        Assert.Equal(403, denied.GetProperty("status").GetInt32());
        Assert.Equal($"project {team}/p", denied.GetProperty("target").GetString());
        Assert.Equal($"/api/v1/teams/{team}/projects", denied.GetProperty("path").GetString());
        Assert.Contains(events, e => e.GetProperty("action").GetString() == "teams.members.put" && e.GetProperty("outcome").GetString() == "success");
        Assert.Contains(events, e => e.GetProperty("action").GetString() == "teams.create" && e.GetProperty("status").GetInt32() == 201);
    }

    [Fact]
    public async Task Operations_endpoints_answer()
    {
        var http = Host.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);
        var metrics = await (await Host.Admin().GetAsync("/metrics")).Content.ReadAsStringAsync();
        Assert.Contains("http_server_request_duration_seconds", metrics);
        var openapi = await http.GetAsync("/openapi/v1.json").ShouldBeAsync(HttpStatusCode.OK);
        Assert.True(openapi.GetProperty("paths").TryGetProperty("/api/v1/teams/{team}/projects/{project}/apps", out _));
        // The Hangfire dashboard is for platform admins only.
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Host.Admin().GetAsync("/hangfire")).StatusCode);
    }
}

[Collection("sqlite")]
public sealed class SqliteTenancyTests(SqliteFixture f) : TenancyTests(f.Host);

[Collection("postgres")]
public sealed class PostgresTenancyTests(PostgresFixture f) : TenancyTests(f.Host);
