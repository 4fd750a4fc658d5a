using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Builds;

/// <summary>An Api killed (SIGKILL) in the middle of a build: after its restart the build is not stuck in Running.</summary>
[Collection("runtime")]
public sealed class BuildRecoveryTests
{
    private static Process StartApi(string dataDir, int port) => Built.Start("dotnet", [Built.Dll("Api", "Platform.Api"), "--urls", $"http://127.0.0.1:{port}",
            "--contentRoot", Path.Combine(RegistryFixture.RepoRoot, "src", "Api")],
        new Dictionary<string, string>
        {
            ["Platform__DataDir"] = dataDir,
            ["Platform__Bootstrap__AdminEmail"] = PlatformHost.AdminEmail,
            ["Platform__Bootstrap__AdminPassword"] = PlatformHost.AdminPassword,
            ["Platform__Bootstrap__AdminToken"] = PlatformHost.AdminToken,
            ["Platform__Ingress__Url"] = "http://127.0.0.1:0",
            ["Platform__Builds__StaleAfterSeconds"] = "6",
            ["Platform__Builds__Bridge"] = "pbtst0",
            ["Platform__Builds__Subnet"] = "10.255.253.0/24",
            ["Platform__Builds__CgroupName"] = "platform-builds-tests",
        }, Path.Combine(dataDir, "api.log"));

    private static Task WaitHealthyAsync(HttpClient http, Process api) => Built.WaitReadyAsync(http, api, 90, "the Api ready");

    [Fact]
    public async Task A_build_whose_Api_was_killed_is_retried_after_the_restart_with_its_leftovers_gone()
    {
        Assert.True(Environment.UserName == "root", "build tests need root; CI runs as root");
        var dataDir = Path.Combine("/var/tmp", "platform-recovery-tests", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir);
        var port = Run.FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", PlatformHost.AdminToken);
        var api = StartApi(dataDir, port);
        try
        {
            await WaitHealthyAsync(http, api);
            (await Run.ToolAsync(Path.Combine(RegistryFixture.RepoRoot, "scripts", "make-base-image.sh"),
                [$"127.0.0.1:{port}", PlatformHost.AdminToken, Path.Combine(dataDir, "layout")])).EnsureSuccess("make-base-image.sh");
            await http.PostAsJsonAsync("/api/v1/teams", new { name = "rec" }).ShouldBeAsync(HttpStatusCode.Created);
            await http.PostAsJsonAsync("/api/v1/teams/rec/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
            var app = await http.PostAsJsonAsync("/api/v1/teams/rec/projects/p/apps", new { name = "slow", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
            var remote = app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@");
            var source = await BuildKit.Source.InitAsync(Path.Combine(dataDir, "src"), remote);
            await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo slow step && sleep 12 && echo done > /done\n" }, "slow");

            async Task<JsonElement> Build() => (await http.GetFromJsonAsync<JsonElement>("/api/v1/teams/rec/projects/p/apps/slow/builds/1"));
            await Cluster.WaitAsync(async () => (await http.GetStringAsync("/api/v1/teams/rec/projects/p/apps/slow/builds/1/log")).Contains("slow step"),
                60, "the slow step running");
            var scratch = Directory.EnumerateDirectories(Path.Combine(dataDir, "build-work", "scratch")).Single();

            api.Kill();   // SIGKILL, the Api alone: buildah and the step are orphans now
            await api.WaitForExitAsync();
            api.Dispose();
            api = StartApi(dataDir, port);
            await WaitHealthyAsync(http, api);

            // Its orphans were killed and its scratch folder removed; it was queued again and built to the end.
            JsonElement build = default;
            await Cluster.WaitAsync(async () => (build = await Build()).GetProperty("state").GetString() is "Succeeded" or "Failed", 120, () => $"build #1: {build}");
            var log = await http.GetStringAsync("/api/v1/teams/rec/projects/p/apps/slow/builds/1/log");
            Assert.True(build.GetProperty("state").GetString() == "Succeeded", log);
            Assert.Contains("the Api running this build stopped; retrying", log);
            Assert.False(Directory.Exists(scratch), "the first attempt's scratch folder is gone");
            Assert.Empty(Directory.EnumerateDirectories(Path.Combine(dataDir, "build-work", "scratch")));
        }
        finally
        {
            if (!api.HasExited) api.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task At_start_leftover_name_spaces_on_this_platforms_bridge_go_and_those_of_another_platform_stay()
    {
        var ours = "pb-" + Guid.NewGuid().ToString("N")[..12];
        var theirs = "pb-" + Guid.NewGuid().ToString("N")[..12];
        try
        {
            await using (var first = await Cluster.StartAsync(settings: BuildKit.BuildSettings))
            {
                var source = await BuildKit.GitAppAsync(first, "bridge");
                await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN true\n" }, "bridge");   // the bridge exists
                await BuildKit.WaitForBuildAsync(first, "bridge", 1, "Succeeded");
            }
            // What a build whose Api died leaves (a name-space with its veth on the bridge), and a name-space of another platform's.
            foreach (var ns in new[] { ours, theirs }) (await Run.ToolAsync("ip", ["netns", "add", ns])).EnsureSuccess("ip netns add");
            (await Run.ToolAsync("ip", ["link", "add", "pbv" + ours[^10..], "type", "veth", "peer", "name", "eth0", "netns", ours])).EnsureSuccess("ip link add");
            (await Run.ToolAsync("ip", ["link", "set", "pbv" + ours[^10..], "master", BuildKit.BuildSettings["Platform:Builds:Bridge"]!])).EnsureSuccess("ip link set master");

            await using var second = await Cluster.StartAsync(settings: BuildKit.BuildSettings);   // its recovery runs before it starts
            Assert.False(Platform.Host.Linux.NetworkNamespaces.Exists(ours), "the leftover on this platform's bridge is still there");
            Assert.True(Platform.Host.Linux.NetworkNamespaces.Exists(theirs), "another platform's name-space was removed");
        }
        finally
        {
            foreach (var ns in new[] { ours, theirs }) await Run.ToolAsync("ip", ["netns", "delete", ns]);
        }
    }
}
