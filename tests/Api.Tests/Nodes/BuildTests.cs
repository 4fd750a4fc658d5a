using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Nodes;

/// <summary>git push → buildah build → image in the registry → rollout → served by the router; a broken Dockerfile fails with its step named.</summary>
[Collection("runtime")]
public sealed class BuildTests
{
    private static Task<Platform.NodeAgent.Runtime.ProcessRunner.Result> GitAsync(string home, string cwd, params string[] args) =>
        Run.GitAsync(home, cwd, args, TimeSpan.FromMinutes(2));

    private static async Task<JsonElement> WaitForBuildAsync(Cluster cluster, string app, int number, string state)
    {
        JsonElement build = default;
        await Cluster.WaitAsync(async () =>
        {
            var list = await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/{app}/builds");
            build = list.GetProperty("items").EnumerateArray().FirstOrDefault(b => b.GetProperty("number").GetInt32() == number);
            return build.ValueKind == JsonValueKind.Object && build.GetProperty("state").GetString() is "Succeeded" or "Failed";
        }, 180, () => $"build #{number} of {app}: {build}");
        var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/{app}/builds/{number}/log");
        Assert.True(build.GetProperty("state").GetString() == state, $"build #{number} is {build} — log:\n{log}");
        return build;
    }

    [Fact]
    public async Task A_pushed_Dockerfile_app_is_built_deployed_and_served_and_a_broken_one_fails_naming_its_step()
    {
        await using var cluster = await Cluster.StartAsync();
        await cluster.StartAgentAsync("build-node");
        var app = await cluster.Admin.PostAsJsonAsync(cluster.Apps, new { name = "site", instances = 1, memoryMiB = 64, port = 8080 })
            .ShouldBeAsync(HttpStatusCode.Created);
        var remote = app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@");
        var home = Path.Combine(cluster.Host.DataDir, "home");
        var work = Path.Combine(cluster.Host.DataDir, "site");
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(work);
        await File.WriteAllTextAsync(Path.Combine(work, "Dockerfile"), """
            FROM busybox
            WORKDIR /www
            COPY index.html /www/index.html
            RUN echo "built by the platform" > /www/built.txt
            ENV GREETING=hi
            EXPOSE 8080
            CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
            """);
        await File.WriteAllTextAsync(Path.Combine(work, "index.html"), "version one\n");
        (await GitAsync(home, work, "init", "--initial-branch=main")).EnsureSuccess("git init");
        (await GitAsync(home, work, "add", ".")).EnsureSuccess("git add");
        (await GitAsync(home, work, "commit", "-m", "one")).EnsureSuccess("git commit");
        (await GitAsync(home, work, "push", remote, "main")).EnsureSuccess("git push");
        var commit = (await GitAsync(home, work, "rev-parse", "HEAD")).Stdout.Trim();

        var build = await WaitForBuildAsync(cluster, "site", 1, "Succeeded");
        Assert.Equal(commit, build.GetProperty("commit").GetString());
        Assert.StartsWith("sha256:", build.GetProperty("imageDigest").GetString());
        await cluster.WaitForInstancesAsync("site", 1);
        await Cluster.WaitAsync(async () =>
        {
            using var r = await cluster.ThroughRouterAsync("site");
            return r.StatusCode == HttpStatusCode.OK && await r.Content.ReadAsStringAsync() == "version one\n";
        }, 30, "version one through the router");
        using (var r = await cluster.ThroughRouterAsync("site", "/built.txt"))
            Assert.Equal("built by the platform\n", await r.Content.ReadAsStringAsync());

        // A broken Dockerfile: the build fails with the failing step in its reason; the running version stays.
        await File.WriteAllTextAsync(Path.Combine(work, "Dockerfile"), "FROM busybox\nRUN echo about to fail && exit 3\n");
        (await GitAsync(home, work, "commit", "-am", "broken")).EnsureSuccess("git commit");
        (await GitAsync(home, work, "push", remote, "main")).EnsureSuccess("git push");
        var failed = await WaitForBuildAsync(cluster, "site", 2, "Failed");
        Assert.Contains("exit 3", failed.GetProperty("reason").GetString());
        Assert.Contains("about to fail", await cluster.Admin.GetStringAsync($"{cluster.Apps}/site/builds/2/log"));
        using (var r = await cluster.ThroughRouterAsync("site"))
            Assert.Equal("version one\n", await r.Content.ReadAsStringAsync());
    }
}
