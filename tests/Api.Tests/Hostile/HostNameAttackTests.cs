using System.Net;
using System.Net.Http.Json;
using Platform.Api.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A developer of one team tries to take over another team's app host name — by choosing names whose
/// <c>{app}-{project}-{team}</c> spells it, or by racing its creation — or to create an app whose host label
/// no DNS resolver accepts. Same attacks on SQLite and PostgreSQL.
/// </summary>
[Trait("Suite", "Hostile")]
public abstract class HostNameAttackTests(PlatformHost host, ITestOutputHelper output)
{
    private static string Suffix() => Guid.NewGuid().ToString("N")[..6];

    private async Task TeamAsync(string team, params string[] projects)
    {
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        foreach (var p in projects)
            await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = p }).ShouldBeAsync(HttpStatusCode.Created);
    }

    private Task<HttpResponseMessage> CreateAppAsync(string team, string project, string name) =>
        host.Admin().PostAsJsonAsync($"/api/v1/teams/{team}/projects/{project}/apps", new { name, instances = 0 });

    [Fact]
    public async Task An_app_spelling_another_teams_host_name_is_refused_naming_name()
    {
        // The issue's example: app shop-prod in project acme of team corp… is shop-prod-acme-corp…, as is app shop in
        // project prod of team acme-corp….
        var s = Suffix();
        await TeamAsync("acme-corp" + s, "prod");
        await TeamAsync("corp" + s, "acme");
        var first = await CreateAppAsync("acme-corp" + s, "prod", "shop").ShouldBeAsync(HttpStatusCode.Created);
        Assert.StartsWith($"http://shop-prod-acme-corp{s}.", first.GetProperty("url").GetString());

        var taken = await CreateAppAsync("corp" + s, "acme", "shop-prod").ShouldBeAsync(HttpStatusCode.Conflict);
        Assert.Contains($"shop-prod-acme-corp{s}", taken.GetProperty("errors").GetProperty("name")[0].GetString());
        Assert.DoesNotContain("acme-corp" + s + "/", taken.GetRawText());   // which team holds it is not told
        // Positive control: the same team and project take a name that spells a host of their own.
        await CreateAppAsync("corp" + s, "acme", "shop-dev").ShouldBeAsync(HttpStatusCode.Created);
        await host.Admin().GetAsync($"/api/v1/teams/corp{s}/projects/acme/apps/shop-prod").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task An_app_whose_host_label_would_pass_63_characters_is_refused_naming_name()
    {
        var team = "long-team-" + Suffix();                 // 16 characters
        var project = new string('p', 30);                  // {app}-{30}-{16}: 48 + app ≤ 63 → app ≤ 15
        await TeamAsync(team, project);
        var refused = await CreateAppAsync(team, project, new string('a', 16)).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("at most 15 characters", refused.GetProperty("errors").GetProperty("name")[0].GetString());
        var fits = await CreateAppAsync(team, project, new string('a', 15)).ShouldBeAsync(HttpStatusCode.Created);
        var label = new Uri(fits.GetProperty("url").GetString()!).Host.Split('.')[0];
        Assert.Equal(63, label.Length);
    }

    [Fact]
    public async Task A_project_or_team_name_that_leaves_no_room_for_an_app_in_the_host_label_is_refused_naming_name()
    {
        var team = "t" + Suffix();                          // 7 characters: a project may have 63 - 7 - 3 = 53
        await TeamAsync(team);
        var admin = host.Admin();
        var refused = await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = new string('p', 54) })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.True(refused.GetProperty("errors").TryGetProperty("name", out _));
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = new string('p', 53) }).ShouldBeAsync(HttpStatusCode.Created);
        await CreateAppAsync(team, new string('p', 53), "a").ShouldBeAsync(HttpStatusCode.Created);

        var longTeam = await admin.PostAsJsonAsync("/api/v1/teams", new { name = Suffix() + new string('t', 54) })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("at most 59 characters", longTeam.GetProperty("errors").GetProperty("name")[0].GetString());
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = Suffix() + new string('t', 53) }).ShouldBeAsync(HttpStatusCode.Created);
    }

    [Fact]
    public async Task Two_teams_racing_to_create_the_same_host_name_get_exactly_one_app()
    {
        var s = Suffix();
        await TeamAsync("acme-corp" + s, Enumerable.Range(0, 5).Select(i => "prod" + i).ToArray());
        await TeamAsync("corp" + s, "acme");
        var byIndex = 0;
        for (var round = 0; round < 5; round++)
        {
            // shop-prod{round}-acme-corp… from both sides, at once, in two teams (two admission locks).
            var results = await Task.WhenAll(
                CreateAppAsync("acme-corp" + s, "prod" + round, "shop"),
                CreateAppAsync("corp" + s, "acme", $"shop-prod{round}"));
            var codes = results.Select(r => r.StatusCode).ToList();
            Assert.True(codes.Count(c => c == HttpStatusCode.Created) == 1 && codes.Count(c => c == HttpStatusCode.Conflict) == 1,
                $"round {round}: {string.Join(", ", codes)} — {string.Join(" | ", await Task.WhenAll(results.Select(r => r.Content.ReadAsStringAsync())))}");
            var loser = await results.Single(r => r.StatusCode == HttpStatusCode.Conflict).ReadJsonAsync();
            Assert.True(loser.GetProperty("errors").TryGetProperty("name", out _));
            if (loser.GetProperty("detail").GetString()!.Contains("first", StringComparison.Ordinal)) byIndex++;
        }
        output.WriteLine($"{byIndex} of 5 races were settled by the unique index, the others by the check before it");
        // The audit log says what the losers were told (rejected, 409), whether the check or the unique index refused them.
        foreach (var team in new[] { "acme-corp" + s, "corp" + s })
        {
            var creates = (await host.Admin().GetAsync($"/api/v1/teams/{team}/audit").ShouldBeAsync(HttpStatusCode.OK)).GetProperty("items")
                .EnumerateArray().Where(e => e.GetProperty("action").GetString() == "apps.create").ToList();
            Assert.All(creates, e => Assert.Contains(e.GetProperty("outcome").GetString(), new[] { "success", "rejected" }));
        }
    }
}

[Collection("sqlite")]
public sealed class SqliteHostNameAttackTests(SqliteFixture f, ITestOutputHelper output) : HostNameAttackTests(f.Host, output);

[Collection("postgres")]
public sealed class PostgresHostNameAttackTests(PostgresFixture f, ITestOutputHelper output) : HostNameAttackTests(f.Host, output);
