using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds;

/// <summary>
/// A base from a registry an operator listed (Platform:Builds:UpstreamRegistries): Debian's docker-registry
/// (distribution) on loopback, with its own configuration and storage, holding no credentials of the platform's;
/// pulled through the platform's registry, whose copy serves once the upstream is gone.
/// </summary>
[Collection("runtime")]
public sealed class BuildUpstreamTests
{
    [Fact]
    public async Task A_FROM_naming_a_listed_upstream_registry_builds_through_the_platforms_cache_which_serves_when_the_upstream_is_down()
    {
        await using var upstream = await UpstreamRegistry.StartAsync();
        await using var cluster = await Cluster.StartAsync(settings: new Dictionary<string, string?>(BuildKit.BuildSettings)
        {
            ["Platform:Builds:UpstreamRegistries:0"] = upstream.Host,
        });
        (await Run.ToolAsync("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds=admin:" + PlatformHost.AdminToken,
            $"docker://{cluster.Registry}/library/busybox:latest", $"docker://{upstream.Host}/tools/busybox:1"])).EnsureSuccess("skopeo copy to the upstream");
        var source = await BuildKit.GitAppAsync(cluster, "upstream");
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = $"FROM {upstream.Host}/tools/busybox:1\nRUN echo from the upstream\n" }, "up");
        await BuildKit.WaitForBuildAsync(cluster, "upstream", 1, "Succeeded");
        var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/upstream/builds/1/log");
        var cached = $"library/upstream/{upstream.Host.Replace(':', '-')}/tools/busybox:1";
        Assert.Contains($"cached {upstream.Host}/tools/busybox:1 in the platform's registry", log);
        Assert.Contains($"Trying to pull {cluster.Registry}/{cached}", log);   // buildah pulls the platform's copy, not the upstream
        Assert.Contains("from the upstream", log);
        (await Run.ToolAsync("skopeo", ["inspect", "--tls-verify=false", "--creds=admin:" + PlatformHost.AdminToken, $"docker://{cluster.Registry}/{cached}"]))
            .EnsureSuccess("the cached copy in the platform's registry");

        // The upstream goes away. Another app (a layer cache of its own, so nothing local) still builds from the copy.
        await upstream.DisposeAsync();
        var other = await BuildKit.GitAppAsync(cluster, "again");
        await other.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = $"FROM {upstream.Host}/tools/busybox:1\nRUN echo from the cache\n" }, "again");
        await BuildKit.WaitForBuildAsync(cluster, "again", 1, "Succeeded");
        var again = await cluster.Admin.GetStringAsync($"{cluster.Apps}/again/builds/1/log");
        Assert.Contains("could not be fetched from its registry", again);
        Assert.Contains("from the cache", again);
    }

    /// <summary>docker-registry on a free loopback port, its storage and configuration in a folder of its own.</summary>
    private sealed class UpstreamRegistry : IAsyncDisposable
    {
        private readonly string root;
        private readonly Platform.Host.Processes.RunningProcess process;
        private bool stopped;
        public string Host { get; }

        private UpstreamRegistry(string root, string host, Platform.Host.Processes.RunningProcess process)
        {
            this.root = root;
            Host = host;
            this.process = process;
        }

        public static async Task<UpstreamRegistry> StartAsync()
        {
            var root = Path.Combine("/var/tmp", "platform-upstream-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(root);
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var config = Path.Combine(root, "config.yml");
            await File.WriteAllTextAsync(config, $"""
                version: 0.1
                log:
                  level: error
                storage:
                  filesystem:
                    rootdirectory: {root}/data
                http:
                  addr: 127.0.0.1:{port}
                """);
            var process = Platform.Host.Processes.ProcessRunner.Start(new Platform.Host.Processes.ProcessSpec("docker-registry", ["serve", config])
            {
                Timeout = Timeout.InfiniteTimeSpan, OnLine = (_, _) => { },
            });
            var upstream = new UpstreamRegistry(root, $"127.0.0.1:{port}", process);
            using var http = new HttpClient();
            await Cluster.WaitAsync(async () =>
            {
                try { return (await http.GetAsync($"http://{upstream.Host}/v2/")).IsSuccessStatusCode; }
                catch (HttpRequestException) { return false; }
            }, 20, "docker-registry answers on " + upstream.Host);
            return upstream;
        }

        public async ValueTask DisposeAsync()
        {
            if (stopped) return;
            stopped = true;
            await process.DisposeAsync();
            Directory.Delete(root, recursive: true);
        }
    }
}
