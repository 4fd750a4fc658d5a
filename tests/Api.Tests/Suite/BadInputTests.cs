using System.Net;
using System.Net.Http.Json;
using System.Text;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Suite;

/// <summary>
/// Generated hostile bodies against every mutating endpoint: each answer is a 4xx with a problem
/// details body, never a 5xx, and the data already there is unchanged.
/// </summary>
public abstract class BadInputTests(PlatformHost host) : IAsyncLifetime
{
    private readonly string _team = "bad-" + Guid.NewGuid().ToString("N")[..6];

    public async Task InitializeAsync()
    {
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = _team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{_team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{_team}/projects/p/apps", new { name = "a", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>(method, path, the fields the endpoint takes with a valid sample value)</summary>
    private IEnumerable<(string Method, string Path, Dictionary<string, object?> Valid)> Endpoints()
    {
        var t = _team;
        yield return ("POST", "/api/v1/teams", new() { ["name"] = "x" });
        yield return ("PUT", $"/api/v1/teams/{t}/quota", new()
        {
            ["memoryMiB"] = 1, ["cpuMillicores"] = 1, ["instances"] = 1, ["apps"] = 1, ["projects"] = 1, ["registryGiB"] = 1, ["concurrentBuilds"] = 1,
        });
        yield return ("PUT", $"/api/v1/teams/{t}/members/nobody@example.com", new() { ["role"] = "viewer" });
        yield return ("POST", $"/api/v1/teams/{t}/projects", new() { ["name"] = "x" });
        yield return ("PUT", $"/api/v1/teams/{t}/projects/p/quota", new() { ["memoryMiB"] = 1, ["cpuMillicores"] = 1, ["instances"] = 1, ["apps"] = 1 });
        yield return ("PUT", $"/api/v1/teams/{t}/projects/p/members/nobody@example.com", new() { ["role"] = "viewer" });
        yield return ("POST", $"/api/v1/teams/{t}/projects/p/apps", new()
        {
            ["name"] = "x", ["image"] = "a/b:c", ["instances"] = 1, ["memoryMiB"] = 64, ["cpuMillicores"] = 100, ["port"] = 80,
            ["env"] = new Dictionary<string, string> { ["A"] = "b" }, ["healthCheckPath"] = "/",
        });
        yield return ("PATCH", $"/api/v1/teams/{t}/projects/p/apps/a", new() { ["instances"] = 1, ["memoryMiB"] = 64, ["env"] = new Dictionary<string, string> { ["A"] = "b" } });
        yield return ("POST", $"/api/v1/teams/{t}/projects/p/apps", new()
        {
            ["name"] = "y", ["sourceUrl"] = "https://git.example.com/r.git", ["branch"] = "main", ["dockerfilePath"] = "Dockerfile",
            ["webhookSecret"] = "0123456789abcdef",
        });
        yield return ("PATCH", $"/api/v1/teams/{t}/projects/p/apps/a", new() { ["branch"] = "main", ["dockerfilePath"] = "web/Dockerfile" });
        yield return ("POST", $"/api/v1/teams/{t}/projects/p/apps/a/builds", new() { ["commit"] = new string('a', 40) });
        yield return ("PUT", $"/api/v1/teams/{t}/quota", new()
        {
            ["memoryMiB"] = 1, ["cpuMillicores"] = 1, ["instances"] = 1, ["apps"] = 1, ["projects"] = 1, ["registryGiB"] = 1, ["concurrentBuilds"] = 1,
            ["build"] = new { memoryMiB = 512, cpuMillicores = 1000, pids = 100, timeoutSeconds = 60 },
        });
        yield return ("POST", "/api/v1/users", new() { ["email"] = "x@example.com", ["password"] = "long-enough-pw" });
        yield return ("POST", "/api/v1/me/tokens", new() { ["name"] = "n", ["expiresInDays"] = 1 });
        yield return ("POST", "/api/v1/nodes/join-tokens", new() { ["expiresInHours"] = 1 });
        yield return ("POST", "/api/v1/nodes/join", new() { ["joinToken"] = "platjoin_x", ["name"] = "n", ["address"] = "10.0.0.1" });
        yield return ("POST", "/api/v1/nodes/heartbeat", new()
        {
            ["capacity"] = new { memoryMiB = 1024, cpuMillicores = 1000 }, ["runningInstances"] = 0, ["address"] = "10.0.0.1",
        });
        yield return ("POST", "/api/v1/nodes/status", new()
        {
            ["instances"] = new[] { new { id = Guid.NewGuid(), state = "Ready", restarts = 0, hostPort = 20001, usedCpuMillicores = 1, usedMemoryBytes = 1 } },
        });
    }

    private static readonly object?[] HostileValues =
    [
        null, true, -1, 0, -9_223_372_036_854_775_807L, 9_223_372_036_854_775_807L, 1e308, -0.5, 2_147_483_648L,
        "", " ", "UPPER", "-x", "x-", "a_b", "a.b", new string('a', 64), new string('b', 5000), "x\u0000y", "x\ny", "\u202e",
        "<script>", "../../etc/passwd", "'; drop table teams; --", "%00", "ÿ", "😀", new object[] { 1, 2 }, new { nested = new { deeper = 1 } },
        new Dictionary<string, object> { ["1BAD"] = "x" }, new Dictionary<string, object> { ["A"] = 5 }, new Dictionary<string, object?> { ["A"] = null },
        "not-a-role", "Owner", "owner ", "1", "0x10",
    ];

    private static readonly string[] RawBodies =
    [
        "", "{", "}", "[]", "null", "true", "42", "\"str\"", "{\"name\":}", "{\"name\":\"x\",}", "{'name':'x'}", "{\"name\":\"x\"}{",
        "{\"name\":\"x\",\"name\":\"y\"}", "{\"unknownField\":1}", "\u0000", "{\"name\":\"\\ud800\"}", "{\"a\":" + new string('[', 200) + new string(']', 200) + "}",
        new string('{', 5000), "{\"name\":1e99999}", "\uFEFF{\"name\":\"x\"}",
    ];

    [Fact]
    public async Task Hundreds_of_hostile_bodies_per_endpoint_get_problem_details_and_never_a_5xx()
    {
        var admin = host.Admin();
        var failures = new List<string>();
        var sent = 0;
        foreach (var (method, path, valid) in Endpoints())
        {
            var bodies = new List<(string Label, HttpContent Content)>();
            foreach (var raw in RawBodies)
                bodies.Add(($"raw {Short(raw)}", new StringContent(raw, Encoding.UTF8, "application/json")));
            foreach (var field in valid.Keys.Append("unknown"))
                foreach (var value in HostileValues)
                {
                    var body = new Dictionary<string, object?>(valid) { [field] = value };
                    bodies.Add(($"{field}={Short(value?.ToString())}", JsonContent.Create(body)));
                    // The same value alone, without the other (valid) fields.
                    bodies.Add(($"only {field}={Short(value?.ToString())}", JsonContent.Create(new Dictionary<string, object?> { [field] = value })));
                }
            bodies.Add(("oversized", new StringContent("{\"name\":\"" + new string('x', 200_000) + "\"}", Encoding.UTF8, "application/json")));
            bodies.Add(("form", new FormUrlEncodedContent(new Dictionary<string, string> { ["name"] = "x" })));
            bodies.Add(("text", new StringContent("name=x", Encoding.UTF8, "text/plain")));

            foreach (var (label, content) in bodies)
            {
                var response = await admin.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = content });
                sent++;
                var status = (int)response.StatusCode;
                if (status >= 500)
                    failures.Add($"{method} {path} [{label}] → {status} {await response.Content.ReadAsStringAsync()}");
                else if (status >= 400 && status != 401 && response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                    failures.Add($"{method} {path} [{label}] → {status} without problem details");
            }
        }
        Assert.True(sent > 13 * 200, $"only {sent} bodies sent");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(30)));

        // Nothing was lost: the app created before is intact.
        var app = await admin.GetAsync($"/api/v1/teams/{_team}/projects/p/apps/a").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("a", app.GetProperty("name").GetString());
    }

    [Fact]
    public async Task A_wrong_type_is_a_400_naming_the_field()
    {
        var response = await host.Admin().PostAsync($"/api/v1/teams/{_team}/projects/p/apps",
            new StringContent("{\"name\":\"x\",\"instances\":\"three\"}", Encoding.UTF8, "application/json"));
        var problem = await Task.FromResult(response).ShouldBeAsync(HttpStatusCode.BadRequest);
        Assert.True(problem.GetProperty("errors").TryGetProperty("instances", out _));
        Assert.DoesNotContain("Platform.", problem.ToString());
    }

    [Fact]
    public async Task An_oversized_body_is_413()
    {
        var response = await host.Admin().PostAsync("/api/v1/teams",
            new StringContent("{\"name\":\"" + new string('x', 100_000) + "\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Absurd_quantities_are_422_naming_each_field()
    {
        var problem = await host.Admin().PostAsJsonAsync($"/api/v1/teams/{_team}/projects/p/apps",
            new { name = "q", instances = -1, memoryMiB = 2_000_000_000, cpuMillicores = 0, port = 70000, healthCheckPath = "no-slash" })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        var errors = problem.GetProperty("errors");
        foreach (var field in new[] { "instances", "memoryMiB", "cpuMillicores", "port", "healthCheckPath" })
            Assert.True(errors.TryGetProperty(field, out _), field);
    }

    private static string Short(string? s) => s is null ? "null" : s.Length > 20 ? s[..20] + "…" : s;
}

[Collection("sqlite")]
public sealed class SqliteBadInputTests(SqliteFixture f) : BadInputTests(f.Host);

[Collection("postgres")]
public sealed class PostgresBadInputTests(PostgresFixture f) : BadInputTests(f.Host);
