using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Scheduling;

/// <summary>
/// The status message a placement pass gives each app it could not place, written once per distinct message for a
/// whole batch of apps: apps created together each get their own words, and a message goes once nothing waits.
/// </summary>
public sealed class PlacementMessageTests
{
    [Theory]
    [InlineData(Provider.Sqlite)]
    [InlineData(Provider.Postgres)]
    public async Task Apps_created_together_each_get_their_own_message_and_lose_it_when_nothing_waits(Provider provider)
    {
        await using var host = new PlatformHost(provider);
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "msg" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/msg/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        const string Apps = "/api/v1/teams/msg/projects/p/apps";

        // Created at once, so that passes take several of them together.
        var created = await Task.WhenAll(
            Enumerable.Range(1, 4).Select(i => admin.PostAsJsonAsync(Apps, new { name = $"src{i}", instances = 1, memoryMiB = 32 }))
                .Concat(Enumerable.Range(1, 2).Select(i => admin.PostAsJsonAsync(Apps, new { name = $"img{i}", image = $"msg/p/img{i}:v1", instances = 1, memoryMiB = 32 }))));
        Assert.All(created, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));

        async Task<string?> MessageAsync(string app) =>
            (await admin.GetFromJsonAsync<JsonElement>($"{Apps}/{app}")).GetProperty("status").GetProperty("message").GetString();
        for (var i = 1; i <= 4; i++)
            Assert.Equal("Waiting for a build: the app has no image yet.", await MessageAsync($"src{i}"));
        for (var i = 1; i <= 2; i++)
            Assert.Equal($"Image 'msg/p/img{i}:v1' was not found: push it to the platform registry first.", await MessageAsync($"img{i}"));

        // Scaled to nothing, an app waits for nothing: its message goes, the other one's stays.
        await admin.PatchAsJsonAsync($"{Apps}/img1", new { instances = 0 }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Null(await MessageAsync("img1"));
        Assert.Equal("Image 'msg/p/img2:v1' was not found: push it to the platform registry first.", await MessageAsync("img2"));
    }
}
