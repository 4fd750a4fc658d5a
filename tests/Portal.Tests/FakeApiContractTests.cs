extern alias api;

using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Portal.Api;

namespace Platform.Portal.Tests;

/// <summary>
/// Keeps <see cref="FakeApi"/> honest: the same calls go to the fake and, through the Portal's own
/// <see cref="PlatformApi"/> client, to a real Api on SQLite; each step must give the same answer —
/// the same values a person sees, the same JSON shape, the same problem (status, title, detail, fields).
/// What only the server can know is left out: ids, times, quota figures, the router's port and the
/// scheduler's message.
/// </summary>
public sealed class FakeApiContractTests
{
    private const string AdminEmail = "admin@platform.test";
    private const string AdminToken = "plat_bootstrap_token_for_tests_0123456789";

    /// <summary>The real Api on a loopback port of its own, as tests/Api.Tests/Infrastructure/PlatformHost.cs hosts it.</summary>
    private sealed class RealApi : WebApplicationFactory<api::Program>
    {
        public string DataDir { get; } = Path.Combine(Path.GetTempPath(), "platform-tests", Guid.NewGuid().ToString("N"));

        public RealApi() => UseKestrel(0);

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            Directory.CreateDirectory(DataDir);
            builder.UseEnvironment("Testing");
            builder.UseSetting("Platform:DataDir", DataDir);
            builder.UseSetting("Platform:Bootstrap:AdminEmail", AdminEmail);
            builder.UseSetting("Platform:Bootstrap:AdminPassword", "admin-password-1");
            builder.UseSetting("Platform:Bootstrap:AdminToken", AdminToken);
            builder.UseSetting("Platform:Ingress:Url", "http://127.0.0.1:0");
            builder.UseSetting("Platform:Builds:Workers", "0");
            builder.UseSetting("Logging:LogLevel:Default", "Warning");
        }

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (disposing && Directory.Exists(DataDir)) Directory.Delete(DataDir, recursive: true);
        }
    }

    [Fact]
    public async Task The_fake_answers_teams_projects_apps_and_members_as_the_real_Api_does()
    {
        using var real = new RealApi();
        real.StartServer();
        var address = real.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient { BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1").Replace("localhost", "127.0.0.1") + "/") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        var fake = new FakeApi { Me = new MeResponse("admin", AdminEmail, true, []), AcmeConfigured = false };

        var expected = await ScenarioAsync(new PlatformApi(http));
        var actual = await ScenarioAsync(fake);

        Assert.Equal(expected.Select(e => e.Step), actual.Select(a => a.Step));
        foreach (var ((step, answer), (_, fakeAnswer)) in expected.Zip(actual))
            if (fakeAnswer != answer)
                Assert.Fail($"'{step}': the fake answers\n  {fakeAnswer}\nwhere the Api answers\n  {answer}");
    }

    /// <summary>Every call a page makes about teams, projects, apps and members, successes and refusals, each answer as text.</summary>
    private static async Task<List<(string Step, string Answer)>> ScenarioAsync(IPlatformApi api)
    {
        var log = new List<(string, string)>();
        async Task Do<T>(string step, Func<Task<T>> call, Func<T, object?> view)
        {
            try { log.Add((step, Json(view(await call())))); }
            catch (ApiProblem p) { log.Add((step, Json(new { problem = (int)p.Status, p.Title, p.Detail, fields = p.Errors.Keys.Order(StringComparer.Ordinal) }))); }
        }
        Task Done(string step, Func<Task> call) => Do(step, async () => { await call(); return 0; }, _ => "done");

        await Do("user", () => api.CreateUserAsync(new CreateUserRequest("dev@example.com", "user-password-1")), View);
        await Do("user again", () => api.CreateUserAsync(new CreateUserRequest("dev@example.com", "user-password-1")), View);

        await Do("team", () => api.CreateTeamAsync(new CreateTeamRequest("acme")), View);
        await Do("team again", () => api.CreateTeamAsync(new CreateTeamRequest("acme")), View);
        await Do("team with a bad name", () => api.CreateTeamAsync(new CreateTeamRequest("Bad Name")), View);
        await Do("get team", () => api.TeamAsync("acme"), View);
        await Do("get unknown team", () => api.TeamAsync("nope"), View);
        await Do("list teams", () => api.TeamsAsync(), l => l.Select(t => new { t.Name, t.MyRole }));

        await Do("project", () => api.CreateProjectAsync("acme", new CreateProjectRequest("web")), View);
        await Do("project again", () => api.CreateProjectAsync("acme", new CreateProjectRequest("web")), View);
        await Do("project with a bad name", () => api.CreateProjectAsync("acme", new CreateProjectRequest("-web")), View);
        await Do("project in unknown team", () => api.CreateProjectAsync("nope", new CreateProjectRequest("web")), View);
        await Do("list projects", () => api.ProjectsAsync("acme"), l => l.Select(p => new { p.Name, p.Team }));
        await Do("get project", () => api.ProjectAsync("acme", "web"), View);
        await Do("get unknown project", () => api.ProjectAsync("acme", "nope"), View);

        var shop = new CreateAppRequest("shop", "library/hello:latest", 2, null, null, null, new() { ["GREETING"] = "hi", ["EMPTY"] = null }, null);
        await Do("app", () => api.CreateAppAsync("acme", "web", shop), View);
        await Do("app again", () => api.CreateAppAsync("acme", "web", shop), View);
        await Do("app with a bad name", () => api.CreateAppAsync("acme", "web", shop with { Name = "Shop!" }), View);
        await Do("app of another team's image", () => api.CreateAppAsync("acme", "web", shop with { Name = "other", Image = "globex/web/shop:1" }), View);
        await Do("app in unknown project", () => api.CreateAppAsync("acme", "nope", shop), View);
        await Do("app from git", () => api.CreateAppAsync("acme", "web", new CreateAppRequest("site", null, null, 128, 100, 3000, null, "/healthz")), View);
        await Do("list apps", () => api.AppsAsync("acme", "web"), l => l.Select(View));
        await Do("get app", () => api.AppAsync("acme", "web", "shop"), View);
        await Do("get unknown app", () => api.AppAsync("acme", "web", "nope"), View);
        await Do("scale", () => api.UpdateAppAsync("acme", "web", "shop", new UpdateAppRequest(null, 3, null, null, null, null, null)), View);
        await Do("env", () => api.UpdateAppAsync("acme", "web", "shop",
            new UpdateAppRequest(null, null, null, null, null, new() { ["GREETING"] = null, ["COLOR"] = "blue" }, null)), View);
        await Do("resize", () => api.UpdateAppAsync("acme", "web", "shop", new UpdateAppRequest(null, null, 128, 500, 9090, null, "/ready")), View);
        await Do("update unknown app", () => api.UpdateAppAsync("acme", "web", "nope", new UpdateAppRequest(null, 1, null, null, null, null, null)), View);

        await Do("members", () => api.MembersAsync("acme"), l => l.Select(View));
        await Do("add member", () => api.SetMemberAsync("acme", "dev@example.com", "developer"), View);
        await Do("add member again, as viewer", () => api.SetMemberAsync("acme", "dev@example.com", "viewer"), View);
        await Do("add unknown person", () => api.SetMemberAsync("acme", "nobody@example.com", "developer"), View);
        await Do("add with an unknown role", () => api.SetMemberAsync("acme", "dev@example.com", "captain"), View);
        await Do("add project member", () => api.SetProjectMemberAsync("acme", "web", "dev@example.com", "admin"), View);
        await Do("add project owner", () => api.SetProjectMemberAsync("acme", "web", "dev@example.com", "owner"), View);
        await Do("members of team and project", () => api.MembersAsync("acme"), l => l.Select(View));
        await Done("remove member", () => api.RemoveMemberAsync("acme", "dev@example.com"));
        await Done("remove member again", () => api.RemoveMemberAsync("acme", "dev@example.com"));
        await Done("remove the last owner", () => api.RemoveMemberAsync("acme", AdminEmail));
        await Done("remove project member", () => api.RemoveProjectMemberAsync("acme", "web", "dev@example.com"));
        await Do("members at the end", () => api.MembersAsync("acme"), l => l.Select(View));
        await Do("members of unknown team", () => api.MembersAsync("nope"), l => l.Select(View));

        await Do("requests", () => api.RequestsAsync("acme", "web", "shop", "1h"), View);
        await Do("requests over a day", () => api.RequestsAsync("acme", "web", "shop", "24h"), View);
        await Do("requests over a week", () => api.RequestsAsync("acme", "web", "shop", "7d"), View);
        await Do("requests of unknown app", () => api.RequestsAsync("acme", "web", "nope", "1h"), View);

        await Do("domains", () => api.DomainsAsync("acme", "web", "shop"), l => l.Select(View));
        await Do("claim domain", () => api.PutDomainAsync("acme", "web", "shop", "shop.example.com", null), View);
        await Do("claim a bad host", () => api.PutDomainAsync("acme", "web", "shop", "bad_host!", null), View);
        await Do("claim a host of the apps domain", () => api.PutDomainAsync("acme", "web", "shop", "x.apps.localhost", null), View);
        await Do("claim it for another app", () => api.PutDomainAsync("acme", "web", "site", "shop.example.com", null), View);
        await Do("domains after claim", () => api.DomainsAsync("acme", "web", "shop"), l => l.Select(View));
        await Done("remove domain", () => api.DeleteDomainAsync("acme", "web", "shop", "shop.example.com"));
        await Do("domains after removal", () => api.DomainsAsync("acme", "web", "shop"), l => l.Select(View));

        await Do("domain suffixes", () => api.DomainSuffixesAsync("acme"), l => l);
        await Do("set domain suffixes", () => api.SetDomainSuffixesAsync("acme", ["Example.com", "example.com.", "shop.example.org"]), l => l);
        await Do("domain suffixes after", () => api.DomainSuffixesAsync("acme"), l => l);
        await Do("the apps domain's certificate before one is uploaded", () => api.IngressCertificateAsync(), c => c);

        await Done("delete app", () => api.DeleteAppAsync("acme", "web", "shop"));
        await Done("delete app again", () => api.DeleteAppAsync("acme", "web", "shop"));
        await Do("apps after delete", () => api.AppsAsync("acme", "web"), l => l.Select(a => a.Name));
        await Do("get deleted app", () => api.AppAsync("acme", "web", "shop"), View);
        return log;
    }

    private static object View(UserResponse u) => new { u.Email, u.PlatformAdmin, u.LockedOut, shape = Shape(u) };
    private static object View(TeamResponse t) => new { t.Name, t.MyRole, shape = Shape(t) };
    private static object View(ProjectResponse p) => new { p.Name, p.Team, p.MyRole, shape = Shape(p) };
    private static object View(MemberResponse m) => new { m.Email, m.Role, m.Project, shape = Shape(m) };
    private static object View(RequestSeriesResponse r) => new
    {
        r.Window, r.StepSeconds, Points = r.Points.Count, r.Requests, r.Status5xx, r.P99Ms, Steps = r.Points.Zip(r.Points.Skip(1)).Select(p => p.Second.At - p.First.At).Distinct(),
        shape = Shape(r),
    };
    private static object View(DomainResponse d) => new { d.Host, d.State, d.Source, d.Message, d.DnsRecord, shape = Shape(d with { NotAfter = null, RenewAt = null }) };

    private static object View(AppResponse a) => new
    {
        a.Name, a.Project, a.Team, a.Image, a.Instances, a.MemoryMiB, a.CpuMillicores, a.Port,
        Env = a.Env.OrderBy(e => e.Key, StringComparer.Ordinal).ToList(), a.HealthCheckPath,
        Host = new Uri(a.Url).Host, GitPath = a.GitUrl is null ? null : new Uri(a.GitUrl).AbsolutePath,
        a.Status?.Ready, a.Status?.Desired, a.Readiness, a.Liveness, a.StopGraceSeconds, a.SourceUrl, a.Branch, a.DockerfilePath, a.WebhookSecret,
        shape = Shape(a with { Status = a.Status! with { Message = null } }),
    };

    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    private static string Json(object? value) => JsonSerializer.Serialize(value, Web);

    /// <summary>The JSON a value is sent as with every leaf replaced by its kind: members present, null or not, of which type.</summary>
    private static string Shape<T>(T value)
    {
        static string Of(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().Select(p => p.Name + ":" + Of(p.Value))) + "}",
            JsonValueKind.Array => "[" + string.Join("|", e.EnumerateArray().Select(Of).Distinct()) + "]",
            JsonValueKind.Null => "null",
            JsonValueKind.True or JsonValueKind.False => "bool",
            var kind => kind.ToString().ToLowerInvariant(),
        };
        return Of(JsonSerializer.SerializeToElement(value, Web));
    }
}
