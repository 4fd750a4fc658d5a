using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds;

/// <summary>
/// git push → buildah build → image in the registry → release → rollout → served by the router; the cache,
/// a broken Dockerfile, rollback. Real git, buildah, runc (CI runs as root).
/// </summary>
[Collection("runtime")]
public sealed class BuildTests
{
    private const string Dockerfile = """
        FROM busybox
        WORKDIR /www
        RUN echo 'web:x:1000:1000:web:/www:/bin/sh' >> /etc/passwd && echo 'web:x:1000:' >> /etc/group
        RUN echo "built by the platform" > /www/built.txt && chown -R web /www
        COPY index.html /www/index.html
        ENV GREETING=hi
        USER web
        EXPOSE 8080
        CMD ["sh", "-c", "echo running as $(id -un) in $(pwd) with $GREETING; exec httpd -f -p 8080 -h /www"]
        """;

    [Fact]
    public async Task A_pushed_Dockerfile_app_is_built_deployed_rebuilt_from_cache_and_rolled_back_and_a_broken_one_fails_naming_its_line()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        await cluster.StartAgentAsync("build-node");
        var source = await BuildKit.GitAppAsync(cluster, "site");
        var commit = await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = Dockerfile, ["index.html"] = "version one\n" }, "one");

        var build = await BuildKit.WaitForBuildAsync(cluster, "site", 1, "Succeeded");
        Assert.Equal(commit, build.GetProperty("commit").GetString());
        Assert.Equal("push", build.GetProperty("trigger").GetString());
        Assert.StartsWith("sha256:", build.GetProperty("imageDigest").GetString());
        await cluster.WaitForInstancesAsync("site", 1);
        await Cluster.WaitAsync(async () =>
        {
            using var r = await cluster.ThroughRouterAsync("site");
            return r.StatusCode == HttpStatusCode.OK && await r.Content.ReadAsStringAsync() == "version one\n";
        }, 30, "version one through the router");
        using (var r = await cluster.ThroughRouterAsync("site", "/built.txt"))
            Assert.Equal("built by the platform\n", await r.Content.ReadAsStringAsync());
        // USER, WORKDIR and ENV hold at run time: the server does not run as root.
        await Cluster.WaitAsync(async () => (await cluster.Admin.GetStringAsync($"{cluster.Apps}/site/logs?tail=20")).Contains("running as web in /www with hi"),
            20, "the app's log line saying who it runs as");

        // One file changed: the steps before COPY come from the cache, and the router serves the new content.
        await source.PushAsync(new Dictionary<string, string> { ["index.html"] = "version two\n" }, "two");
        await BuildKit.WaitForBuildAsync(cluster, "site", 2, "Succeeded");
        var log2 = await cluster.Admin.GetStringAsync($"{cluster.Apps}/site/builds/2/log");
        Assert.True(log2.Split('\n').Count(l => l.Contains("Using cache", StringComparison.Ordinal)) >= 2, log2);
        await Cluster.WaitAsync(async () =>
        {
            using var r = await cluster.ThroughRouterAsync("site");
            return r.StatusCode == HttpStatusCode.OK && await r.Content.ReadAsStringAsync() == "version two\n";
        }, 60, "version two through the router");

        var releases = await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/site/releases");
        var items = releases.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal([2, 1], items.Select(i => i.GetProperty("version").GetInt32()));
        Assert.True(items[0].GetProperty("current").GetBoolean());
        Assert.Equal(2, items[0].GetProperty("build").GetInt32());
        Assert.Equal(PlatformHost.AdminEmail, items[0].GetProperty("createdBy").GetString());

        // A broken Dockerfile: the build fails naming the line; the running version stays.
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo about to fail && exit 3\nCMD [\"true\"]\n" }, "broken");
        var failed = await BuildKit.WaitForBuildAsync(cluster, "site", 3, "Failed");
        var reason = failed.GetProperty("reason").GetString()!;
        Assert.Contains("Dockerfile line 2", reason);
        Assert.Contains("exit status 3", reason);
        Assert.Contains("about to fail", await cluster.Admin.GetStringAsync($"{cluster.Apps}/site/builds/3/log"));
        using (var r = await cluster.ThroughRouterAsync("site"))
            Assert.Equal("version two\n", await r.Content.ReadAsStringAsync());

        // A base image that is not there: said so.
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM nosuchbase\nCMD [\"true\"]\n" }, "missing base");
        var missing = await BuildKit.WaitForBuildAsync(cluster, "site", 4, "Failed");
        Assert.Contains("base image library/nosuchbase", missing.GetProperty("reason").GetString());

        // Rollback to v1 is one call: a new release running v1's image.
        var rollback = await cluster.Admin.PostAsync($"{cluster.Apps}/site/releases/1/rollback", null).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal(3, rollback.GetProperty("version").GetInt32());
        Assert.Equal(items[1].GetProperty("image").GetString(), rollback.GetProperty("image").GetString());
        await Cluster.WaitAsync(async () =>
        {
            using var r = await cluster.ThroughRouterAsync("site");
            return r.StatusCode == HttpStatusCode.OK && await r.Content.ReadAsStringAsync() == "version one\n";
        }, 60, "version one again after the rollback");
        await cluster.Admin.PostAsync($"{cluster.Apps}/site/releases/9/rollback", null).ShouldBeAsync(HttpStatusCode.NotFound);

        // A rebuild of the head through the API (no push), streamed as Server-Sent Events until it ends.
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = Dockerfile }, "fixed");
        await BuildKit.WaitForBuildAsync(cluster, "site", 5, "Succeeded");
        var rebuild = await cluster.Admin.PostAsJsonAsync($"{cluster.Apps}/site/builds", new { }).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal(6, rebuild.GetProperty("number").GetInt32());
        Assert.Equal("api", rebuild.GetProperty("trigger").GetString());
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{cluster.Apps}/site/builds/6/log");
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var sse = await cluster.Admin.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", sse.Content.Headers.ContentType?.MediaType);
        var events = await new StreamReader(await sse.Content.ReadAsStreamAsync()).ReadToEndAsync();
        Assert.Contains("data: ==> building", events);
        Assert.Contains("data: ==> release v", events);
        Assert.EndsWith("event: end\ndata: Succeeded\n\n", events);
        // Older builds' images were pruned from the app's cache, the steps of the last ones were not.
        Assert.Contains("Using cache", events);
        var storage = Directory.EnumerateDirectories(Path.Combine(cluster.Host.DataDir, "build-work", "buildah")).Single();   // the app's own cache
        var images = (await Run.ToolAsync("runuser", ["-u", "platform-build", "--", "env", $"CONTAINERS_STORAGE_CONF={storage}/storage.conf",   // rootless storage: its account's
            $"HOME={storage}", $"XDG_RUNTIME_DIR={storage}/xdg", "buildah", "images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"]))
            .EnsureSuccess("buildah images").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(i => i.Contains("/rt/web/site:")).ToList();
        Assert.True(images.Count <= 2, string.Join("\n", images));
    }
}
