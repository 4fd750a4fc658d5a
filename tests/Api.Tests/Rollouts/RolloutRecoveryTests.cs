using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Rollouts;

/// <summary>An Api killed (SIGKILL) in the middle of a rollout: the rollout is kept in the database and completes after the restart.</summary>
[Collection("runtime")]
public sealed class RolloutRecoveryTests
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
            ["Platform__Nodes__HeartbeatSeconds"] = "2",
        }, Path.Combine(dataDir, "api.log"));

    [Fact]
    public async Task A_rollout_interrupted_by_an_Api_SIGKILL_completes_after_the_restart()
    {
        Assert.True(Environment.UserName == "root", "runtime tests need root; CI runs as root");
        var dataDir = Path.Combine("/var/tmp", "platform-rollout-recovery", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir);
        var port = Run.FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", PlatformHost.AdminToken);
        var api = StartApi(dataDir, port);
        Process? agent = null;
        const string Apps = "/api/v1/teams/rr/projects/p/apps";
        async Task Healthy() => await Cluster.WaitAsync(async () =>
        {
            Assert.False(api.HasExited, "the Api exited");
            try { return (await http.GetAsync("/readyz")).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, 90, "the Api ready");
        async Task<List<JsonElement>> Instances() =>
            (await http.GetFromJsonAsync<JsonElement>($"{Apps}/web/instances")).GetProperty("items").EnumerateArray().ToList();
        try
        {
            await Healthy();
            var layout = Path.Combine(dataDir, "layout");
            (await Run.ToolAsync(Path.Combine(RegistryFixture.RepoRoot, "scripts", "make-base-image.sh"), [$"127.0.0.1:{port}", PlatformHost.AdminToken, layout]))
                .EnsureSuccess("make-base-image.sh");
            var tag = (await Run.ToolAsync("umoci", ["ls", "--layout", layout])).EnsureSuccess("umoci ls").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).First(t => t != "latest");
            await http.PostAsJsonAsync("/api/v1/teams", new { name = "rr" }).ShouldBeAsync(HttpStatusCode.Created);
            await http.PostAsJsonAsync("/api/v1/teams/rr/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
            foreach (var (v, delay) in new[] { ("v1", 0), ("v2", 6) })
            {
                (await Run.ToolAsync("umoci", ["config", "--image", $"{layout}:{tag}", "--tag", v, "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd",
                    $"sleep {delay} && mkdir -p /tmp/www && echo {v} > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www"])).EnsureSuccess("umoci config");
                (await Run.ToolAsync("skopeo", ["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "platform:" + PlatformHost.AdminToken,
                    $"oci:{layout}:{v}", $"docker://127.0.0.1:{port}/rr/p/web:{v}"])).EnsureSuccess("skopeo copy");
            }
            var join = await http.PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created);
            agent = Built.Start("dotnet", [NodeAgentTests.AgentDll()], new Dictionary<string, string>
            {
                ["Agent__ApiUrl"] = $"http://127.0.0.1:{port}/", ["Agent__NodeName"] = "rr-node", ["Agent__DataDir"] = Path.Combine(dataDir, "agent"),
                ["Agent__JoinToken"] = join.GetProperty("token").GetString()!, ["Agent__Address"] = "127.0.0.1", ["Agent__BridgePrefix"] = "prr",
                ["Agent__CgroupParent"] = "platform-tests-rr-node", ["Agent__PortRangeStart"] = "36000", ["Agent__PortRangeSize"] = "500",
                ["Agent__SubnetBase"] = "160", ["Agent__StopGraceSeconds"] = "2",
            }, Path.Combine(dataDir, "agent.log"));
            await http.PostAsJsonAsync(Apps, new { name = "web", image = "rr/p/web:v1", instances = 2, memoryMiB = 64, port = 8080 }).ShouldBeAsync(HttpStatusCode.Created);
            await Cluster.WaitAsync(async () => (await http.GetFromJsonAsync<JsonElement>($"{Apps}/web/rollout")).GetProperty("state").GetString() == "Succeeded",
                120, "generation 1 rolled out");

            // The rollout to v2 starts (its servers listen 6 s after they start); the Api is killed while they are still Starting.
            await http.PatchAsJsonAsync($"{Apps}/web", new { image = "rr/p/web:v2" }).ShouldBeAsync(HttpStatusCode.OK);
            await Cluster.WaitAsync(async () => (await Instances()).Count(i => i.GetProperty("generation").GetInt32() == 2 && i.GetProperty("state").GetString() == "Starting") == 2,
                60, "generation 2 starting beside generation 1");
            api.Kill();
            await api.WaitForExitAsync();
            api.Dispose();
            api = StartApi(dataDir, port);
            await Healthy();

            // After the restart: generation 2 becomes Ready, generation 1 goes, and the rollout is marked Succeeded.
            JsonElement rollout = default;
            await Cluster.WaitAsync(async () => (rollout = await http.GetFromJsonAsync<JsonElement>($"{Apps}/web/rollout")).GetProperty("state").GetString() == "Succeeded",
                120, () => $"the rollout to complete: {rollout}");
            Assert.Equal(2, rollout.GetProperty("generation").GetInt32());
            var after = await Instances();
            Assert.True(after.Count == 2 && after.All(i => i.GetProperty("generation").GetInt32() == 2 && i.GetProperty("state").GetString() == "Ready"),
                JsonSerializer.Serialize(after));
        }
        finally
        {
            // No container outlives the test: the app goes through the Api, the agent tears its instances down.
            try
            {
                await http.DeleteAsync($"{Apps}/web");
                var instances = Path.Combine(dataDir, "agent", "instances");
                await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(instances) || Directory.GetDirectories(instances).Length == 0), 60, "the agent to tear down");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"rollout recovery clean-up: {e.Message}");
            }
            if (!api.HasExited) api.Kill(entireProcessTree: true);
            if (agent is { HasExited: false }) agent.Kill(entireProcessTree: true);
        }
    }
}
