using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Api.Routing;
using Platform.Api.Tests.Builds;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Host.Linux;
using Xunit.Abstractions;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// One cluster (the Api with its registry and router, one real agent running runc) for the deletion attacks.
/// Its bridges, subnets, host ports, cgroups and build cgroup are named with a random suffix, apart from other
/// tests running on the same machine; builds run with no network (nothing here needs one).
/// </summary>
public sealed class DeletionCluster : IAsyncLifetime
{
    private static readonly string Suffix = Guid.NewGuid().ToString("N")[..5];
    public string Node { get; } = "del-" + Suffix;
    public string BuildCgroupName { get; } = "platform-builds-del-" + Suffix;
    public Cluster Cluster { get; private set; } = null!;
    public string AgentDir => Cluster.AgentDataDir(Node);

    public async Task InitializeAsync()
    {
        Cluster = await Cluster.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Platform:Builds:Network"] = "none",
            ["Platform:Builds:CgroupName"] = BuildCgroupName,
        });
        var slot = Random.Shared.Next(0, 20);
        await Cluster.StartAgentAsync(Node, portRangeStart: 40000 + slot * 1000, bridgePrefix: "pd" + new string(Enumerable.Range(0, 3).Select(_ => (char)('a' + Random.Shared.Next(26))).ToArray()), subnetBase: 140 + slot * 2);
    }

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        // The parents of the agent's and the builds' cgroups, named for this fixture alone: empty once both stopped.
        await Cgroups.KillAndRemoveAsync("platform-tests-" + Node);
        await Cgroups.KillAndRemoveAsync("/" + BuildCgroupName);
        // On a hybrid host runc also makes empty folders in the named v2 hierarchy, which Cgroups does not walk.
        foreach (var name in new[] { "platform-tests-" + Node, BuildCgroupName })
        {
            var unified = Path.Combine("/sys/fs/cgroup/unified", name);
            if (!Directory.Exists(unified)) continue;
            foreach (var dir in Directory.EnumerateDirectories(unified, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(unified))
                Directory.Delete(dir);
        }
    }
}

/// <summary>
/// A hostile developer deletes a project or a team and hopes that what ran in it keeps running (secrets
/// included) on a node the scheduler now thinks is free, or that its images, repositories and caches stay
/// behind. Each attack runs on the real agent, runc, CNI, git, buildah and skopeo, and checks the host
/// itself; an app of another project or team on the same node is the positive control every time.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class TenancyDeletionAttackTests(DeletionCluster fixture, ITestOutputHelper output) : IClassFixture<DeletionCluster>
{
    private const string Web = "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    private Cluster C => fixture.Cluster;
    private static string Unique(string prefix) => prefix + Guid.NewGuid().ToString("N")[..6];

    /// <summary>What the host shows of one instance: runc's container, its network name-space, its overlay mount, its cgroup, its bundle.</summary>
    private sealed record OnHost(bool Container, bool Netns, bool Mount, bool Cgroup, bool Bundle)
    {
        public bool Any => Container || Netns || Mount || Cgroup || Bundle;
        public bool All => Container && Netns && Mount && Cgroup && Bundle;
    }

    private async Task<OnHost> ProbeAsync(string id)
    {
        var runc = (await Run.ToolAsync("runc", ["--root", Path.Combine(fixture.AgentDir, "runc"), "list", "-q"])).EnsureSuccess("runc list").Stdout;
        var mounts = await File.ReadAllTextAsync("/proc/self/mountinfo");
        return new OnHost(
            runc.Split('\n', StringSplitOptions.TrimEntries).Contains(id),
            (await Run.ToolAsync("ip", ["netns", "list"])).EnsureSuccess("ip netns list").Stdout.Contains("plat-" + id, StringComparison.Ordinal),
            mounts.Contains(id, StringComparison.Ordinal),
            Cgroups.Exists($"platform-tests-{fixture.Node}/{id}"),
            Directory.Exists(Path.Combine(fixture.AgentDir, "instances", id)));
    }

    /// <summary>Files below the agent's data folder holding <paramref name="secret"/> (the bundles' config.json carries the env).</summary>
    private List<string> FilesHolding(string secret)
    {
        var needle = Encoding.UTF8.GetBytes(secret);
        return Directory.EnumerateFiles(fixture.AgentDir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true })
            .Where(f => new FileInfo(f).Length < 64 << 20 && TryRead(f).AsSpan().IndexOf(needle) >= 0).ToList();

        static byte[] TryRead(string f)
        {
            try { return File.ReadAllBytes(f); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
        }
    }

    private async Task<HttpStatusCode> RouterStatusAsync(string app, string project, string team)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(C.Router.Address!, "/"));
        request.Headers.Host = RouteTable.HostOf(app, project, team, "apps.localhost");
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    private async Task<string> RunningInstanceAsync(string appPath)
    {
        List<JsonElement> items = [];
        await Cluster.WaitAsync(async () =>
        {
            items = (await C.Admin.GetFromJsonAsync<JsonElement>(appPath + "/instances")).GetProperty("items").EnumerateArray().ToList();
            return items.Count == 1 && items[0].GetProperty("state").GetString() == "Ready";
        }, 90, () => $"a running instance of {appPath}: {JsonSerializer.Serialize(items)}\n{C.AgentLogs()}");
        return items[0].GetProperty("id").GetString()!;
    }

    /// <summary>The registry's blob file of <paramref name="digest"/>.</summary>
    private string BlobFile(string digest) =>
        Path.Combine(C.Host.DataDir, "registry", "blobs", "sha256", digest[7..9], digest[7..]);

    private async Task<(string Config, List<string> Layers)> ManifestAsync(string reference)
    {
        var raw = (await InspectAsync(reference)).EnsureSuccess("skopeo inspect").Stdout;
        using var manifest = JsonDocument.Parse(raw);
        return (manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!,
            manifest.RootElement.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!).ToList());
    }

    private Task<Platform.Host.Processes.ProcessResult> InspectAsync(string reference) =>
        Run.ToolAsync("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds", "platform:" + PlatformHost.AdminToken, $"docker://{C.Registry}/{reference}"]);

    /// <summary>
    /// The attack on one victim app (created by <paramref name="deploy"/> in what <paramref name="delete"/> removes) beside a
    /// keeper app of project rt/web on the same node: before, both run and the victim's secret is in its bundle; after the
    /// delete, nothing of the victim is on the host within seconds, its image is gone from the registry with the blobs no
    /// one else links, and the keeper still runs, serves and pulls.
    /// </summary>
    private async Task AttackAsync(string team, string project, string deleteUrl)
    {
        var secret = "s3cret-" + Guid.NewGuid().ToString("N");
        var victimImage = await C.ImageAsync("victim", Web, project, team);
        var victimPath = $"/api/v1/teams/{team}/projects/{project}/apps/victim";
        await C.Admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/{project}/apps", new
        {
            name = "victim", image = victimImage, instances = 1, memoryMiB = 64, cpuMillicores = 100, port = 8080,
            env = new Dictionary<string, string> { ["DB_PASSWORD"] = secret },
        }).ShouldBeAsync(HttpStatusCode.Created);
        var keeper = Unique("keep");
        var keeperImage = await C.ImageAsync(keeper, Web);
        await C.CreateAppAsync(keeper, keeperImage);
        var victim = await RunningInstanceAsync(victimPath);
        var kept = await RunningInstanceAsync($"{C.Apps}/{keeper}");

        // Before: both are on the host in full, the secret is in the victim's bundle, both serve, both images pull.
        Assert.True((await ProbeAsync(victim)).All, $"victim on the host: {await ProbeAsync(victim)}");
        Assert.True((await ProbeAsync(kept)).All, $"keeper on the host: {await ProbeAsync(kept)}");
        Assert.Contains(Path.Combine(fixture.AgentDir, "instances", victim, "config.json"), FilesHolding(secret));
        await Cluster.WaitAsync(async () => await RouterStatusAsync("victim", project, team) == HttpStatusCode.OK, 20, "the victim through the router");
        var (victimConfig, victimLayers) = await ManifestAsync(victimImage);
        var (keeperConfig, keeperLayers) = await ManifestAsync(keeperImage);
        Assert.NotEqual(victimConfig, keeperConfig);   // the command differs: the victim's config blob is its own
        Assert.Equal(keeperLayers, victimLayers);       // the layers are shared, content-addressed
        Assert.True(File.Exists(BlobFile(victimConfig)));

        var clock = Stopwatch.StartNew();
        await C.Admin.DeleteAsync(deleteUrl).ShouldBeAsync(HttpStatusCode.NoContent);
        OnHost left = null!;
        await Cluster.WaitAsync(async () => !(left = await ProbeAsync(victim)).Any, 30, () => $"the victim gone from the host: {left}\n{C.AgentLogs()}");
        output.WriteLine($"delete → nothing of the instance on the host: {clock.ElapsedMilliseconds} ms");

        Assert.Empty(FilesHolding(secret));
        Assert.True((await ProbeAsync(kept)).All, $"keeper on the host: {await ProbeAsync(kept)}");
        Assert.Equal(HttpStatusCode.OK, await RouterStatusAsync(keeper, Cluster.Project, Cluster.Team));
        Assert.Equal(HttpStatusCode.NotFound, await RouterStatusAsync("victim", project, team));
        // The Api no longer counts it on the node: the node's desired state holds the keeper alone.
        Assert.Single(await C.InstancesAsync(keeper));

        Assert.False((await InspectAsync(victimImage)).Succeeded, "the deleted image still pulls");
        Assert.False(File.Exists(BlobFile(victimConfig)), "the deleted image's own blob stayed");
        (await InspectAsync(keeperImage)).EnsureSuccess("skopeo inspect of the keeper after the delete");
        Assert.All(keeperLayers.Append(keeperConfig), d => Assert.True(File.Exists(BlobFile(d)), $"shared blob {d} went"));
    }

    [Fact]
    public async Task Deleting_a_project_with_a_running_app_leaves_no_container_netns_mount_cgroup_secret_or_image_on_the_node_or_registry()
    {
        var project = Unique("doomed");
        await C.Admin.PostAsJsonAsync($"/api/v1/teams/{Cluster.Team}/projects", new { name = project }).ShouldBeAsync(HttpStatusCode.Created);
        // Its git repository exists (made on first use) and goes with it.
        var git = await C.Admin.PostAsJsonAsync($"/api/v1/teams/{Cluster.Team}/projects/{project}/apps", new { name = "src", instances = 0 })
            .ShouldBeAsync(HttpStatusCode.Created);
        var remote = git.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@");
        var home = Path.Combine(C.Host.DataDir, "home-" + project);
        Directory.CreateDirectory(home);
        var before = Directory.Exists(Path.Combine(C.Host.DataDir, "git")) ? Directory.GetDirectories(Path.Combine(C.Host.DataDir, "git")).ToHashSet() : [];
        (await Run.GitAsync(home, null, ["ls-remote", remote])).EnsureSuccess("git ls-remote");
        var repository = Assert.Single(Directory.GetDirectories(Path.Combine(C.Host.DataDir, "git")), d => !before.Contains(d));

        await AttackAsync(Cluster.Team, project, $"/api/v1/teams/{Cluster.Team}/projects/{project}");

        Assert.False(Directory.Exists(repository), "the project's git repository stayed");
        Assert.False((await Run.GitAsync(home, null, ["ls-remote", remote])).Succeeded, "the deleted project's repository still answers");
        await C.Admin.GetAsync($"/api/v1/teams/{Cluster.Team}/projects/{project}").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Deleting_a_team_with_a_running_app_leaves_no_container_netns_mount_cgroup_secret_or_image_on_the_node_or_registry()
    {
        var team = Unique("tdoom");
        await C.Admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await C.Admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", new { memoryMiB = 1024, cpuMillicores = 1000, instances = 5, apps = 5, projects = 2, registryGiB = 1, concurrentBuilds = 1 })
            .ShouldBeAsync(HttpStatusCode.OK);
        await C.Admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);

        await AttackAsync(team, "p", $"/api/v1/teams/{team}");

        await C.Admin.GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.NotFound);
    }

    /// <summary>Processes on this machine inside the fixture's build cgroup (buildah, runc, the RUN step).</summary>
    private List<int> BuildProcesses() =>
        Directory.EnumerateDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0).Where(pid => pid > 0)
            .Where(pid =>
            {
                try { return File.ReadAllText($"/proc/{pid}/cgroup").Contains("/" + fixture.BuildCgroupName + "/", StringComparison.Ordinal); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
            }).ToList();

    [Fact]
    public async Task Deleting_a_project_during_its_build_kills_the_build_and_removes_its_layer_cache_log_and_repository()
    {
        var project = Unique("bdoom");
        await C.Admin.PostAsJsonAsync($"/api/v1/teams/{Cluster.Team}/projects", new { name = project }).ShouldBeAsync(HttpStatusCode.Created);
        var apps = $"/api/v1/teams/{Cluster.Team}/projects/{project}/apps";
        var app = await C.Admin.PostAsJsonAsync(apps, new { name = "slow", instances = 1, memoryMiB = 64 }).ShouldBeAsync(HttpStatusCode.Created);
        var remote = app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@");
        var source = await BuildKit.Source.InitAsync(Path.Combine(C.Host.DataDir, "src-" + project), remote);
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo step-started && sleep 300\n" }, "slow");

        // The build runs: its RUN step has started, inside the build's cgroup, with its layer cache and scratch folder on disk.
        await Cluster.WaitAsync(async () => (await C.Admin.GetStringAsync($"{apps}/slow/builds/1/log")).Contains("step-started", StringComparison.Ordinal) && BuildProcesses().Count > 0,
            180, () => "the build's RUN step running");
        var caches = Directory.GetDirectories(Path.Combine(C.Host.DataDir, "build-work", "buildah"));
        var cache = Assert.Single(caches);
        var repository = Assert.Single(Directory.GetDirectories(Path.Combine(C.Host.DataDir, "git")), d => Path.GetFileName(d).StartsWith(Path.GetFileName(cache), StringComparison.Ordinal));
        var logs = Directory.GetFiles(Path.Combine(C.Host.DataDir, "builds"));
        Assert.NotEmpty(logs);

        await C.Admin.DeleteAsync($"/api/v1/teams/{Cluster.Team}/projects/{project}").ShouldBeAsync(HttpStatusCode.NoContent);
        await Cluster.WaitAsync(() => Task.FromResult(BuildProcesses().Count == 0), 30, () => $"the build's processes killed: {string.Join(", ", BuildProcesses())}");
        await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(cache)), 30, () => $"the layer cache {cache} removed");
        Assert.False(Directory.Exists(repository), "the git repository stayed");
        Assert.All(logs, l => Assert.False(File.Exists(l), $"build log {l} stayed"));
        await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(Path.Combine(C.Host.DataDir, "build-work", "scratch"))
            || Directory.GetDirectories(Path.Combine(C.Host.DataDir, "build-work", "scratch")).Length == 0), 30, "the build's scratch folder removed");
        Assert.False(Cgroups.Exists(fixture.BuildCgroupName + "/" + Path.GetFileNameWithoutExtension(logs[0])), "the build's cgroup stayed");
    }
}
