using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Suite;

/// <summary>
/// Every /api/v1 endpoint × every kind of caller, each asserting the status docs/api.md and docs/architecture.md ("Tenancy and roles") require:
/// 404 where the caller has no role in the team, 403 where they can see but not act, 401 without
/// credentials. An endpoint without a row fails <see cref="Every_endpoint_has_a_row"/>.
/// </summary>
public abstract class AuthorizationMatrixTests(PlatformHost host) : IAsyncLifetime
{
    private enum Who { PlatformAdmin, Owner, Admin, Developer, Viewer, ProjectDeveloper, Outsider, Anonymous }

    private static readonly Who[] Everyone = Enum.GetValues<Who>();
    private readonly Dictionary<Who, HttpClient> _clients = [];
    private readonly Dictionary<Who, string> _emails = [];
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];
    private string Team => "mx-" + _run;
    private string Spare => $"spare-{_run}@example.com";
    private HttpClient Admin => _clients[Who.PlatformAdmin];

    public async Task InitializeAsync()
    {
        _clients[Who.PlatformAdmin] = host.Admin();
        _clients[Who.Anonymous] = host.Http();
        foreach (var who in new[] { Who.Owner, Who.Admin, Who.Developer, Who.Viewer, Who.ProjectDeveloper, Who.Outsider })
        {
            _emails[who] = $"{who.ToString().ToLowerInvariant()}-{_run}@example.com";
            _clients[who] = host.Http(await host.UserTokenAsync(_emails[who]));
        }
        await host.UserTokenAsync(Spare);
        await Admin.PostAsJsonAsync("/api/v1/teams", new { name = "other-" + _run }).ShouldBeAsync(HttpStatusCode.Created);
        await Admin.PutAsJsonAsync($"/api/v1/teams/other-{_run}/members/{_emails[Who.Outsider]}", new { role = "owner" }).ShouldBeAsync(HttpStatusCode.OK);
        await CreateTeamWithMembersAsync(Team);
        await Admin.PostAsJsonAsync($"/api/v1/teams/{Team}/projects", new { name = "p2" }).ShouldBeAsync(HttpStatusCode.Created);
        await Admin.PostAsJsonAsync($"/api/v1/teams/{Team}/projects/p1/apps", new { name = "a1", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task CreateTeamWithMembersAsync(string team)
    {
        await Admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await Admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", TenancyTests.Quota(memoryMiB: 1_000_000, cpuMillicores: 1_000_000, instances: 1000, apps: 1000, projects: 1000))
            .ShouldBeAsync(HttpStatusCode.OK);
        await Admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p1" }).ShouldBeAsync(HttpStatusCode.Created);
        foreach (var (who, role) in new[] { (Who.Owner, "owner"), (Who.Admin, "admin"), (Who.Developer, "developer"), (Who.Viewer, "viewer") })
            await Admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{_emails[who]}", new { role }).ShouldBeAsync(HttpStatusCode.OK);
        await Admin.PutAsJsonAsync($"/api/v1/teams/{team}/projects/p1/members/{_emails[Who.ProjectDeveloper]}", new { role = "developer" })
            .ShouldBeAsync(HttpStatusCode.OK);
    }

    /// <param name="Template">The route pattern, as the endpoint is registered.</param>
    /// <param name="Expected">Statuses in the order of <see cref="Who"/>.</param>
    private sealed record Row(string Method, string Template, Func<string> Path, Func<object?>? Body, int[] Expected, Func<Task>? Prepare = null);

    private static int n;
    private static string Fresh(string prefix) => $"{prefix}{Interlocked.Increment(ref n)}-{Guid.NewGuid().ToString("N")[..4]}";

    private IEnumerable<Row> Rows()
    {
        var t = Team;
        const string teams = "/api/v1/teams";
        var apps = $"{teams}/{t}/projects/p1/apps";
        //                                       PA   Own  Adm  Dev  View PDev Out  Anon
        int[] anyUser = [200, 200, 200, 200, 200, 200, 200, 401];
        int[] paOnly = [200, 403, 403, 403, 403, 403, 403, 401];
        int[] seeTeam = [200, 200, 200, 200, 200, 200, 404, 401];

        yield return new("GET", "/api/v1/me", () => "/api/v1/me", null, anyUser);
        yield return new("GET", "/api/v1/me/tokens", () => "/api/v1/me/tokens", null, anyUser);
        yield return new("POST", "/api/v1/me/tokens", () => "/api/v1/me/tokens", () => new { name = "m" }, [201, 201, 201, 201, 201, 201, 201, 401]);
        yield return new("DELETE", "/api/v1/me/tokens/{id}", () => $"/api/v1/me/tokens/{Guid.NewGuid()}", null, [404, 404, 404, 404, 404, 404, 404, 401]);
        yield return new("GET", "/api/v1/users", () => "/api/v1/users", null, paOnly);
        yield return new("POST", "/api/v1/users", () => "/api/v1/users", () => new { email = Fresh("u") + "@example.com", password = "long-enough-pw" },
            [201, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("GET", "/api/v1/teams", () => teams, null, anyUser);
        yield return new("POST", "/api/v1/teams", () => teams, () => new { name = Fresh("t") }, [201, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("GET", "/api/v1/teams/{team}", () => $"{teams}/{t}", null, seeTeam);
        var doomed = "";
        yield return new("DELETE", "/api/v1/teams/{team}", () => $"{teams}/{doomed}", null, [204, 204, 403, 403, 403, 403, 404, 401],
            async () => { doomed = Fresh("del"); await CreateTeamWithMembersAsync(doomed); });
        yield return new("PUT", "/api/v1/teams/{team}/quota", () => $"{teams}/{t}/quota",
            () => TenancyTests.Quota(memoryMiB: 1_000_000, cpuMillicores: 1_000_000, instances: 1000, apps: 1000, projects: 1000),
            [200, 403, 403, 403, 403, 403, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/members", () => $"{teams}/{t}/members", null, [200, 200, 200, 200, 200, 403, 404, 401]);
        yield return new("PUT", "/api/v1/teams/{team}/members/{email}", () => $"{teams}/{t}/members/{Spare}", () => new { role = "developer" },
            [200, 200, 200, 403, 403, 403, 404, 401]);
        yield return new("DELETE", "/api/v1/teams/{team}/members/{email}", () => $"{teams}/{t}/members/{Spare}", null,
            [204, 204, 204, 403, 403, 403, 404, 401],
            () => Admin.PutAsJsonAsync($"{teams}/{t}/members/{Spare}", new { role = "developer" }));
        yield return new("GET", "/api/v1/teams/{team}/projects", () => $"{teams}/{t}/projects", null, seeTeam);
        yield return new("POST", "/api/v1/teams/{team}/projects", () => $"{teams}/{t}/projects", () => new { name = Fresh("p") },
            [201, 201, 201, 403, 403, 403, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}", () => $"{teams}/{t}/projects/p1", null, seeTeam);
        // A project-scoped member sees only their project: another one is hidden (404).
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}", () => $"{teams}/{t}/projects/p2", null, [200, 200, 200, 200, 200, 404, 404, 401]);
        var doomedProject = "";
        yield return new("DELETE", "/api/v1/teams/{team}/projects/{project}", () => $"{teams}/{t}/projects/{doomedProject}", null,
            [204, 204, 204, 403, 403, 403, 404, 401],
            async () =>
            {
                doomedProject = Fresh("dp");
                await Admin.PostAsJsonAsync($"{teams}/{t}/projects", new { name = doomedProject });
                await Admin.PutAsJsonAsync($"{teams}/{t}/projects/{doomedProject}/members/{_emails[Who.ProjectDeveloper]}", new { role = "developer" });
            });
        yield return new("PUT", "/api/v1/teams/{team}/projects/{project}/quota", () => $"{teams}/{t}/projects/p1/quota", () => new { memoryMiB = 4096 },
            [200, 200, 200, 403, 403, 403, 404, 401]);
        yield return new("PUT", "/api/v1/teams/{team}/projects/{project}/members/{email}", () => $"{teams}/{t}/projects/p1/members/{Spare}",
            () => new { role = "viewer" }, [200, 200, 200, 403, 403, 403, 404, 401]);
        yield return new("DELETE", "/api/v1/teams/{team}/projects/{project}/members/{email}", () => $"{teams}/{t}/projects/p1/members/{Spare}", null,
            [204, 204, 204, 403, 403, 403, 404, 401],
            () => Admin.PutAsJsonAsync($"{teams}/{t}/projects/p1/members/{Spare}", new { role = "viewer" }));
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps", () => apps, null, seeTeam);
        yield return new("POST", "/api/v1/teams/{team}/projects/{project}/apps", () => apps, () => new { name = Fresh("a"), instances = 0 },
            [201, 201, 201, 201, 403, 201, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}", () => $"{apps}/a1", null, seeTeam);
        yield return new("PATCH", "/api/v1/teams/{team}/projects/{project}/apps/{app}", () => $"{apps}/a1", () => new { instances = 0 },
            [200, 200, 200, 200, 403, 200, 404, 401]);
        yield return new("DELETE", "/api/v1/teams/{team}/projects/{project}/apps/{app}", () => $"{apps}/tmp", null,
            [204, 204, 204, 204, 403, 204, 404, 401],
            () => Admin.PostAsJsonAsync(apps, new { name = "tmp", instances = 0 }));
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/instances", () => $"{apps}/a1/instances", null, seeTeam);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/logs", () => $"{apps}/a1/logs", null, seeTeam);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/builds", () => $"{apps}/a1/builds", null, seeTeam);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{number:int}", () => $"{apps}/a1/builds/1", null,
            [404, 404, 404, 404, 404, 404, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{number:int}/log", () => $"{apps}/a1/builds/1/log", null,
            [404, 404, 404, 404, 404, 404, 404, 401]);
        // a1 is built from source and nothing was pushed yet: developers are told so (422), viewers may not start builds.
        yield return new("POST", "/api/v1/teams/{team}/projects/{project}/apps/{app}/builds", () => $"{apps}/a1/builds", () => new { },
            [422, 422, 422, 422, 403, 422, 404, 401]);
        yield return new("POST", "/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{number:int}/cancel", () => $"{apps}/a1/builds/1/cancel", null,
            [404, 404, 404, 404, 403, 404, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/releases", () => $"{apps}/a1/releases", null, seeTeam);
        yield return new("POST", "/api/v1/teams/{team}/projects/{project}/apps/{app}/releases/{version:int}/rollback", () => $"{apps}/a1/releases/1/rollback", null,
            [404, 404, 404, 404, 403, 404, 404, 401]);
        // a1 never rolled out (no image yet): readers are told so (404), writers may not cancel what is not there (409).
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/rollout", () => $"{apps}/a1/rollout", null,
            [404, 404, 404, 404, 404, 404, 404, 401]);
        yield return new("POST", "/api/v1/teams/{team}/projects/{project}/apps/{app}/rollout/cancel", () => $"{apps}/a1/rollout/cancel", null,
            [409, 409, 409, 409, 403, 409, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/events", () => $"{apps}/a1/events", null, seeTeam);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/requests", () => $"{apps}/a1/requests", null, seeTeam);
        yield return new("GET", "/api/v1/teams/{team}/projects/{project}/apps/{app}/domains", () => $"{apps}/a1/domains", null, seeTeam);
        yield return new("PUT", "/api/v1/teams/{team}/projects/{project}/apps/{app}/domains/{host}", () => $"{apps}/a1/domains/{Fresh("d")}.example.com", () => new { },
            [201, 201, 201, 201, 403, 201, 404, 401]);
        var doomedHost = "";
        yield return new("DELETE", "/api/v1/teams/{team}/projects/{project}/apps/{app}/domains/{host}", () => $"{apps}/a1/domains/{doomedHost}", null,
            [204, 204, 204, 204, 403, 204, 404, 401],
            async () => { doomedHost = Fresh("gone") + ".example.com"; await Admin.PutAsJsonAsync($"{apps}/a1/domains/{doomedHost}", new { }); });
        yield return new("GET", "/api/v1/teams/{team}/domain-suffixes", () => $"{teams}/{t}/domain-suffixes", null, seeTeam);
        yield return new("PUT", "/api/v1/teams/{team}/domain-suffixes", () => $"{teams}/{t}/domain-suffixes", () => new { suffixes = Array.Empty<string>() },
            [200, 403, 403, 403, 403, 403, 404, 401]);
        // The apps domain's certificate: platform admins only (none uploaded here, so the admin reads 404, deletes 404; an upload that does not fit is 422).
        yield return new("GET", "/api/v1/ingress/certificate", () => "/api/v1/ingress/certificate", null, [404, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("PUT", "/api/v1/ingress/certificate", () => "/api/v1/ingress/certificate", () => new { chainPem = "", keyPem = "" },
            [422, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("DELETE", "/api/v1/ingress/certificate", () => "/api/v1/ingress/certificate", null, [404, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("GET", "/api/v1/teams/{team}/audit", () => $"{teams}/{t}/audit", null, [200, 200, 200, 403, 403, 403, 404, 401]);
        yield return new("GET", "/api/v1/teams/{team}/images", () => $"{teams}/{t}/images", null, seeTeam);
        yield return new("GET", "/api/v1/audit", () => "/api/v1/audit", null, paOnly);
        yield return new("GET", "/api/v1/nodes", () => "/api/v1/nodes", null, paOnly);
        yield return new("GET", "/api/v1/replicas", () => "/api/v1/replicas", null, paOnly);
        yield return new("POST", "/api/v1/nodes/join-tokens", () => "/api/v1/nodes/join-tokens", () => new { },
            [201, 403, 403, 403, 403, 403, 403, 401]);
        // Removing a node: platform admins only (this one does not exist, so the admin's answer is 404).
        yield return new("DELETE", "/api/v1/nodes/{node}", () => "/api/v1/nodes/no-such-node", null,
            [404, 403, 403, 403, 403, 403, 403, 401]);
        // Node agents only (their client credentials): every person is refused.
        yield return new("POST", "/api/v1/nodes/heartbeat", () => "/api/v1/nodes/heartbeat",
            () => new { capacity = new { memoryMiB = 1024, cpuMillicores = 1000 }, runningInstances = 0 },
            [403, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("GET", "/api/v1/nodes/desired", () => "/api/v1/nodes/desired", null, [403, 403, 403, 403, 403, 403, 403, 401]);
        yield return new("POST", "/api/v1/nodes/status", () => "/api/v1/nodes/status", () => new { instances = Array.Empty<object>() },
            [403, 403, 403, 403, 403, 403, 403, 401]);
        // Anonymous by design: the join token is the credential, and a wrong one is 401 for everyone.
        yield return new("POST", "/api/v1/nodes/join", () => "/api/v1/nodes/join", () => new { joinToken = "platjoin_wrong", name = "n1", address = "192.0.2.1" },
            [401, 401, 401, 401, 401, 401, 401, 401]);
    }

    [Fact]
    public async Task Every_endpoint_answers_every_caller_as_the_design_requires()
    {
        var failures = new List<string>();
        foreach (var row in Rows())
        {
            for (var i = 0; i < Everyone.Length; i++)
            {
                if (row.Prepare is not null) await row.Prepare();
                var request = new HttpRequestMessage(new HttpMethod(row.Method), row.Path());
                if (row.Body is not null) request.Content = JsonContent.Create(row.Body());
                var response = await _clients[Everyone[i]].SendAsync(request);
                if ((int)response.StatusCode != row.Expected[i])
                    failures.Add($"{row.Method} {row.Template} as {Everyone[i]}: expected {row.Expected[i]}, got {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                if ((int)response.StatusCode >= 400 && response.Content.Headers.ContentType?.MediaType is { } type && (int)response.StatusCode != 401)
                    Assert.Equal("application/problem+json", type);
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Every_endpoint_has_a_row()
    {
        var covered = Rows().Select(r => $"{r.Method} {r.Template}").ToHashSet();
        var endpoints = host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/api/", StringComparison.Ordinal) == true)
            .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => $"{m} {e.RoutePattern.RawText}"))
            .ToList();
        Assert.NotEmpty(endpoints);
        var missing = endpoints.Where(e => !covered.Contains(e)).ToList();
        Assert.True(missing.Count == 0, "Endpoints without a row in the authorization matrix:\n" + string.Join("\n", missing));
    }
}

[Collection("sqlite")]
public sealed class SqliteAuthorizationMatrixTests(SqliteFixture f) : AuthorizationMatrixTests(f.Host);

[Collection("postgres")]
public sealed class PostgresAuthorizationMatrixTests(PostgresFixture f) : AuthorizationMatrixTests(f.Host);
