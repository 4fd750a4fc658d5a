using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// Where a build's registry credential goes and what it opens. Before, a build pulled with a personal access token
/// of its person (the whole REST API) and buildah offered it to whatever registry a FROM named.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildCredentialAttackTests
{
    [Fact]
    public async Task A_FROM_naming_a_registry_of_the_tenants_gets_no_platform_credential_and_is_refused_unless_an_operator_listed_it()
    {
        await using var listed = FakeRegistry.Start();
        await using var unlisted = FakeRegistry.Start();
        await using var cluster = await Cluster.StartAsync(settings: new Dictionary<string, string?>(BuildKit.BuildSettings)
        {
            ["Platform:Builds:UpstreamRegistries:0"] = listed.Host,
        });
        var source = await BuildKit.GitAppAsync(cluster, "lure");

        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = $"FROM busybox\nRUN true\nFROM {unlisted.Host}/x\n" }, "unlisted");
        var refused = await BuildKit.WaitForBuildAsync(cluster, "lure", 1, "Failed");
        Assert.StartsWith($"Dockerfile line 3: '{unlisted.Host}/x' is in the registry {unlisted.Host}, which builds may not pull from",
            refused.GetProperty("reason").GetString());
        Assert.Empty(unlisted.Requests);

        // The positive control: the listed registry is asked (it demands credentials) and is offered none (buildah
        // answers the challenge with an empty pair when it holds nothing for that registry).
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = $"FROM {listed.Host}/x\n" }, "listed");
        await BuildKit.WaitForBuildAsync(cluster, "lure", 2, "Failed");
        Assert.Contains(listed.Requests, r => r.Path.StartsWith("/v2/", StringComparison.Ordinal));
        Assert.All(listed.Requests, r => Assert.True(r.Authorization is null or "Basic Og==", $"{r.Path} came with {r.Authorization}"));
    }

    [Fact]
    public async Task A_stolen_build_credential_cannot_call_the_REST_API_nor_push_to_another_apps_repository_and_dies_with_its_build()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var source = await BuildKit.GitAppAsync(cluster, "thief");
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo waiting && sleep 120\n" }, "wait");
        await Cluster.WaitAsync(async () => (await cluster.Admin.GetStringAsync($"{cluster.Apps}/thief/builds/1/log")).Split('\n').Contains("waiting"), 60, "the RUN step started");
        // What a step that escaped its container would find: the build's auth file in its scratch folder.
        var file = Directory.EnumerateFiles(Path.Combine(cluster.Host.DataDir, "build-work", "scratch"), "auth.json", SearchOption.AllDirectories).Single();
        var auths = JsonDocument.Parse(await File.ReadAllTextAsync(file)).RootElement.GetProperty("auths");
        Assert.Equal([cluster.Registry], auths.EnumerateObject().Select(p => p.Name));   // the platform's registry alone
        var basic = Encoding.UTF8.GetString(Convert.FromBase64String(auths.GetProperty(cluster.Registry).GetProperty("auth").GetString()!));
        var password = basic[(basic.IndexOf(':') + 1)..];

        // The REST API refuses it (Basic and Bearer); the admin's token is the positive control.
        using var rest = cluster.Host.Http();
        foreach (var header in new[] { new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(basic))), new("Bearer", password) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/teams") { Headers = { Authorization = header } };
            Assert.Equal(HttpStatusCode.Unauthorized, (await rest.SendAsync(request)).StatusCode);
        }
        await cluster.Admin.GetAsync("/api/v1/teams").ShouldBeAsync(HttpStatusCode.OK);

        // The registry: it pulls a base and pushes its own app's repository, never another app's (the admin's rights notwithstanding).
        var creds = "--src-creds=" + basic;
        var pushOwn = await Run.ToolAsync("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", creds, "--dest-creds=" + basic,
            $"docker://{cluster.Registry}/library/busybox:latest", $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/thief:probe"]);
        Assert.True(pushOwn.Succeeded, pushOwn.Stderr);
        var pushOther = await Run.ToolAsync("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", creds, "--dest-creds=" + basic,
            $"docker://{cluster.Registry}/library/busybox:latest", $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/victim:probe"]);
        Assert.False(pushOther.Succeeded, "the build's credential pushed to another app's repository");
        var pushLibrary = await Run.ToolAsync("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", creds, "--dest-creds=" + basic,
            $"docker://{cluster.Registry}/library/busybox:latest", $"docker://{cluster.Registry}/library/busybox:poisoned"]);
        Assert.False(pushLibrary.Succeeded, "the build's credential pushed to library/");

        // Once the build has ended, the credential opens nothing, not even its own repository.
        await cluster.Admin.PostAsync($"{cluster.Apps}/thief/builds/1/cancel", null).ShouldBeAsync(HttpStatusCode.Accepted);
        await BuildKit.WaitForBuildAsync(cluster, "thief", 1, "Cancelled", 30);
        var after = await Run.ToolAsync("skopeo", ["inspect", "--tls-verify=false", "--creds=" + basic, $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/thief:probe"]);
        Assert.False(after.Succeeded, "the credential still worked after its build ended");
        var admin = await Run.ToolAsync("skopeo", ["inspect", "--tls-verify=false", "--creds=admin:" + PlatformHost.AdminToken, $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/thief:probe"]);
        Assert.True(admin.Succeeded, admin.Stderr);
    }

    /// <summary>A registry of the tenant's on loopback: it asks every request for Basic credentials and records what it got.</summary>
    private sealed class FakeRegistry : IAsyncDisposable
    {
        public sealed record Request(string Path, string? Authorization);

        private readonly HttpListener listener = new();
        private readonly Task serving;
        public ConcurrentQueue<Request> Requests { get; } = new();
        public string Host { get; }

        private FakeRegistry(int port)
        {
            Host = $"127.0.0.1:{port}";
            listener.Prefixes.Add($"http://{Host}/");
            listener.Start();
            serving = Task.Run(ServeAsync);
        }

        public static FakeRegistry Start()
        {
            for (var attempt = 0; ; attempt++)
            {
                var port = Random.Shared.Next(20000, 60000);
                try { return new FakeRegistry(port); }
                catch (HttpListenerException) when (attempt < 20) { }
            }
        }

        private async Task ServeAsync()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
                Requests.Enqueue(new Request(context.Request.Url!.AbsolutePath, context.Request.Headers["Authorization"]));
                context.Response.StatusCode = 401;
                context.Response.AddHeader("WWW-Authenticate", "Basic realm=\"tenant\"");
                context.Response.AddHeader("Docker-Distribution-API-Version", "registry/2.0");
                context.Response.Close();
            }
        }

        public async ValueTask DisposeAsync()
        {
            listener.Stop();
            listener.Close();
            await serving;
        }
    }
}
