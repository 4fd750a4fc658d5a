using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A developer of team "ta" holding a role only in project p1 tries to run images they may not pull —
/// project p2's, or team "tb"'s — by naming them in an app (create, PATCH, rollback), by tag or by digest.
/// Each refusal sits beside the same call with p1's own image succeeding.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class ImagePermissionAttackTests : IAsyncLifetime
{
    private readonly PlatformHost _host = new(Provider.Sqlite);
    private string _developer = "";
    private string _ownDigest = "", _secretDigest = "", _otherTeamDigest = "";
    private HttpClient Developer => _host.Http(_developer);
    private const string Apps = "/api/v1/teams/ta/projects/p1/apps";

    public async Task InitializeAsync()
    {
        var admin = _host.Admin();
        foreach (var (team, projects) in new[] { ("ta", new[] { "p1", "p2" }), ("tb", new[] { "p1" }) })
        {
            await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
            foreach (var p in projects)
                await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = p }).ShouldBeAsync(HttpStatusCode.Created);
        }
        _developer = await _host.UserTokenAsync("p1-dev@example.com");
        await admin.PutAsJsonAsync("/api/v1/teams/ta/projects/p1/members/p1-dev@example.com", new { role = "developer" })
            .ShouldBeAsync(HttpStatusCode.OK);
        var registry = RegistryHttp.Basic(_host, PlatformHost.AdminToken);
        _ownDigest = await RegistryHttp.PushImageAsync(registry, "ta/p1/own", "v1", RandomNumberGenerator.GetBytes(1000));
        await RegistryHttp.PushImageAsync(registry, "ta/p1/own", "v2", RandomNumberGenerator.GetBytes(1000));
        _secretDigest = await RegistryHttp.PushImageAsync(registry, "ta/p2/secret", "v1", RandomNumberGenerator.GetBytes(1000));
        _otherTeamDigest = await RegistryHttp.PushImageAsync(registry, "tb/p1/other", "v1", RandomNumberGenerator.GetBytes(1000));

        // The same person cannot pull p2's image from the registry itself: the rule the Api must not bypass.
        var pull = await RegistryHttp.Basic(_host, _developer).GetAsync($"/v2/ta/p2/secret/manifests/{_secretDigest}");
        Assert.Equal(HttpStatusCode.NotFound, pull.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await RegistryHttp.Basic(_host, _developer).GetAsync($"/v2/ta/p1/own/manifests/{_ownDigest}")).StatusCode);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private string Registry => $"{_host.BaseAddress.Host}:{_host.BaseAddress.Port}";

    private static void AssertNamesImage(JsonElement problem) =>
        Assert.True(problem.GetProperty("errors").TryGetProperty("image", out _), problem.ToString());

    private async Task<List<string>> AppNamesAsync() =>
        (await Developer.GetAsync(Apps).ShouldBeAsync(HttpStatusCode.OK)).GetProperty("items").EnumerateArray()
            .Select(a => a.GetProperty("name").GetString()!).ToList();

    [Fact]
    public async Task A_developer_of_p1_cannot_create_an_app_running_p2s_or_another_teams_image_by_tag_or_digest()
    {
        var attempts = new (string Image, HttpStatusCode Expected)[]
        {
            ("ta/p2/secret:v1", HttpStatusCode.NotFound),
            ($"ta/p2/secret@{_secretDigest}", HttpStatusCode.NotFound),
            ($"{Registry}/ta/p2/secret:v1", HttpStatusCode.NotFound),
            ("ta/p2/secret", HttpStatusCode.NotFound),
            ($"tb/p1/other@{_otherTeamDigest}", HttpStatusCode.UnprocessableEntity),
        };
        var i = 0;
        foreach (var (image, expected) in attempts)
        {
            var refused = await Developer.PostAsJsonAsync(Apps, new { name = $"steal{i++}", image, memoryMiB = 64 }).ShouldBeAsync(expected);
            AssertNamesImage(refused);
        }
        // The same person with an OIDC access token (the Portal's and the CLI's way) instead of a personal access token.
        var oidc = _host.Http(await _host.PasswordGrantAsync("p1-dev@example.com", "user-password-1"));
        AssertNamesImage(await oidc.PostAsJsonAsync(Apps, new { name = "steal-oidc", image = $"ta/p2/secret@{_secretDigest}", memoryMiB = 64 })
            .ShouldBeAsync(HttpStatusCode.NotFound));
        Assert.Empty(await AppNamesAsync());   // nothing was created

        // Positive control: the same person, the same call, p1's own image, by tag and by digest.
        await Developer.PostAsJsonAsync(Apps, new { name = "mine", image = "ta/p1/own:v1", memoryMiB = 64 }).ShouldBeAsync(HttpStatusCode.Created);
        await Developer.PostAsJsonAsync(Apps, new { name = "pinned", image = $"{Registry}/ta/p1/own@{_ownDigest}", memoryMiB = 64 })
            .ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal(["mine", "pinned"], (await AppNamesAsync()).Order());
    }

    [Fact]
    public async Task A_developer_of_p1_cannot_patch_an_app_to_run_p2s_image()
    {
        await Developer.PostAsJsonAsync(Apps, new { name = "web", image = "ta/p1/own:v1", memoryMiB = 64 }).ShouldBeAsync(HttpStatusCode.Created);
        foreach (var image in new[] { "ta/p2/secret:v1", $"ta/p2/secret@{_secretDigest}" })
            AssertNamesImage(await Developer.PatchAsJsonAsync($"{Apps}/web", new { image }).ShouldBeAsync(HttpStatusCode.NotFound));
        var app = await Developer.GetAsync($"{Apps}/web").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("ta/p1/own:v1", app.GetProperty("image").GetString());
        var releases = await Developer.GetAsync($"{Apps}/web/releases").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(1, releases.GetProperty("items").GetArrayLength());

        // Positive control: the same PATCH with p1's own next tag.
        var patched = await Developer.PatchAsJsonAsync($"{Apps}/web", new { image = "ta/p1/own:v2" }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("ta/p1/own:v2", patched.GetProperty("image").GetString());
    }

    [Fact]
    public async Task A_developer_of_p1_cannot_roll_back_to_a_release_running_an_image_they_may_not_pull()
    {
        var admin = _host.Admin();
        await Developer.PostAsJsonAsync(Apps, new { name = "web", image = "ta/p1/own:v1", memoryMiB = 64 }).ShouldBeAsync(HttpStatusCode.Created);
        // A team admin (who may pull p2) once ran p2's image in this app: release v2; then back to p1's: v3.
        await admin.PatchAsJsonAsync($"{Apps}/web", new { image = "ta/p2/secret:v1" }).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PatchAsJsonAsync($"{Apps}/web", new { image = "ta/p1/own:v2" }).ShouldBeAsync(HttpStatusCode.OK);

        AssertNamesImage(await Developer.PostAsync($"{Apps}/web/releases/2/rollback", null).ShouldBeAsync(HttpStatusCode.NotFound));
        var releases = await Developer.GetAsync($"{Apps}/web/releases").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(3, releases.GetProperty("items").GetArrayLength());
        Assert.Equal("ta/p1/own:v2", (await Developer.GetAsync($"{Apps}/web").ShouldBeAsync(HttpStatusCode.OK)).GetProperty("image").GetString());

        // Positive control: rolling back to p1's own first release works for the same person.
        var rolled = await Developer.PostAsync($"{Apps}/web/releases/1/rollback", null).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal($"ta/p1/own@{_ownDigest}", rolled.GetProperty("image").GetString());
    }
}
