using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Nodes;

/// <summary>
/// A whole small cluster for runtime tests: the Api (with its registry and router) and real NodeAgent
/// processes running real containers through runc and CNI, as root. The busybox base image is built
/// by scripts/make-base-image.sh; test images differ from it only in their command (umoci config).
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    public const string Team = "rt";
    public const string Project = "web";
    public const string BridgePrefix = "ptst";
    public PlatformHost Host { get; }
    public string Layout { get; }
    public string Registry => $"{Host.BaseAddress.Host}:{Host.BaseAddress.Port}";
    public HttpClient Admin { get; }
    public string Apps => $"/api/v1/teams/{Team}/projects/{Project}/apps";
    private readonly List<(string Name, Process Process, Dictionary<string, string> Env, string? Netns)> _agents = [];

    private Cluster(PlatformHost host)
    {
        Host = host;
        Admin = host.Admin();
        Layout = Path.Combine(host.DataDir, "busybox-layout");
    }

    /// <summary>Heartbeats every second, NotReady after 6 s, a placement pass every second.</summary>
    public static async Task<Cluster> StartAsync(IReadOnlyList<IPAddress>? listen = null, IDictionary<string, string?>? settings = null, Provider provider = Provider.Sqlite)
    {
        Assert.True(Environment.UserName == "root", "runtime tests need root; CI runs as root");
        var host = new PlatformHost(provider, dataDir: Path.Combine("/var/tmp", "platform-cluster-tests", Guid.NewGuid().ToString("N")[..8]),
            settings: new Dictionary<string, string?>
            {
                ["Platform:Nodes:HeartbeatSeconds"] = "1",
                ["Platform:Nodes:NotReadyAfterSeconds"] = "6",
                ["Platform:Nodes:ReconcileSeconds"] = "1",
            }.Concat(settings ?? new Dictionary<string, string?>()).ToDictionary(), listen: listen);
        var cluster = new Cluster(host);
        var script = Path.Combine(RegistryFixture.RepoRoot, "scripts", "make-base-image.sh");
        (await Run.ToolAsync(script, [cluster.Registry, PlatformHost.AdminToken, cluster.Layout])).EnsureSuccess("make-base-image.sh");
        await cluster.Admin.PostAsJsonAsync("/api/v1/teams", new { name = Team }).ShouldBeAsync(HttpStatusCode.Created);
        await cluster.Admin.PutAsJsonAsync($"/api/v1/teams/{Team}/quota", new { memoryMiB = 8192, cpuMillicores = 8000, instances = 50, apps = 50, projects = 5, registryGiB = 5, concurrentBuilds = 2 })
            .ShouldBeAsync(HttpStatusCode.OK);
        await cluster.Admin.PostAsJsonAsync($"/api/v1/teams/{Team}/projects", new { name = Project }).ShouldBeAsync(HttpStatusCode.Created);
        return cluster;
    }

    /// <summary>Pushes busybox with <paramref name="command"/> as its Cmd to {team}/{project}/{name}:1 and returns that reference.</summary>
    public async Task<string> ImageAsync(string name, string command, string? project = null, string? team = null)
    {
        var reference = $"{team ?? Team}/{project ?? Project}/{name}:1";
        await PushImageAsync(Layout, Registry, reference, command);
        return reference;
    }

    /// <summary>Pushes the busybox base of <paramref name="layout"/> with <paramref name="command"/> as its Cmd to <paramref name="registry"/>/<paramref name="reference"/>.</summary>
    public static async Task PushImageAsync(string layout, string registry, string reference, string command)
    {
        var tag = (await Run.ToolAsync("umoci", ["ls", "--layout", layout])).EnsureSuccess("umoci ls").Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).First(t => t != "latest" && !t.StartsWith("app-", StringComparison.Ordinal));
        var local = "app-" + reference.Replace('/', '-').Replace(':', '-');
        (await Run.ToolAsync("umoci", ["config", "--image", $"{layout}:{tag}", "--tag", local,
            "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", command])).EnsureSuccess("umoci config");
        (await Run.ToolAsync("skopeo", ["copy", "-q", "--dest-tls-verify=false", "--dest-creds", "platform:" + PlatformHost.AdminToken,
            $"oci:{layout}:{local}", $"docker://{registry}/{reference}"])).EnsureSuccess("skopeo copy");
    }

    public async Task<string> JoinTokenAsync() =>
        (await Admin.PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created)).GetProperty("token").GetString()!;

    public string AgentDataDir(string name) => Path.Combine(Host.DataDir, "agent-" + name);

    /// <summary>
    /// Starts an agent process (inside <paramref name="netns"/> when given, through nsenter) and waits until its node is Ready.
    /// A test in another test assembly runs beside this one's runtime tests: it passes a bridge prefix, subnet base and port
    /// range of its own, so the two agents' bridges, addresses and host ports never meet.
    /// </summary>
    /// <param name="maxStopGraceSeconds">The node's cap on apps' grace periods (short: most test apps ignore SIGTERM, and every stop would wait it out).</param>
    public async Task StartAgentAsync(string name, Uri? apiUrl = null, string address = "127.0.0.1", string? netns = null, int portRangeStart = 31000,
        string bridgePrefix = BridgePrefix, int subnetBase = 120, int maxStopGraceSeconds = 2)
    {
        var env = AgentEnvironment(name, apiUrl ?? Host.BaseAddress, AgentDataDir(name), await JoinTokenAsync(), address, portRangeStart,
            bridgePrefix, subnetBase, maxStopGraceSeconds);
        _agents.Add((name, Launch(env, netns), env, netns));
        await WaitAsync(async () => await NodeStateAsync(name) == "Ready", 60, $"node {name} Ready");
    }

    /// <summary>A test agent's configuration: its own cgroup parent and data folder, a bridge, subnet and host ports of the test's choosing.</summary>
    public static Dictionary<string, string> AgentEnvironment(string name, Uri apiUrl, string dataDir, string joinToken, string address = "127.0.0.1",
        int portRangeStart = 31000, string bridgePrefix = BridgePrefix, int subnetBase = 120, int maxStopGraceSeconds = 2) => new()
    {
        ["Agent__ApiUrl"] = apiUrl.ToString(),
        ["Agent__NodeName"] = name,
        ["Agent__DataDir"] = dataDir,
        ["Agent__JoinToken"] = joinToken,
        ["Agent__Address"] = address,
        ["Agent__BridgePrefix"] = bridgePrefix,
        ["Agent__CgroupParent"] = "platform-tests-" + name,
        ["Agent__PortRangeStart"] = portRangeStart.ToString(),
        ["Agent__PortRangeSize"] = "1000",
        ["Agent__PidsLimit"] = "64",
        ["Agent__SubnetBase"] = subnetBase.ToString(),
        ["Agent__StopGraceSeconds"] = maxStopGraceSeconds.ToString(),
        ["Logging__Console__FormatterName"] = "simple",
    };

    private static Process Launch(Dictionary<string, string> env, string? netns) =>
        netns is null
            ? Built.Start("dotnet", [NodeAgentTests.AgentDll()], env, env["Agent__DataDir"] + ".log")
            : Built.Start("nsenter", ["--net=/var/run/netns/" + netns, "dotnet", NodeAgentTests.AgentDll()], env, env["Agent__DataDir"] + ".log");

    /// <summary>SIGKILL to the agent alone (its containers' shims are not its process tree's business).</summary>
    public async Task KillAgentAsync(string name)
    {
        var agent = _agents.Single(a => a.Name == name);
        agent.Process.Kill(entireProcessTree: false);
        await agent.Process.WaitForExitAsync();
    }

    /// <summary>Starts the agent again with its data folder (no join token needed any more).</summary>
    public void RestartAgent(string name)
    {
        var i = _agents.FindIndex(a => a.Name == name);
        var (_, _, env, netns) = _agents[i];
        _agents[i] = (name, Launch(env, netns), env, netns);
    }

    public async Task<string?> NodeStateAsync(string name)
    {
        var nodes = await Admin.GetFromJsonAsync<JsonElement>("/api/v1/nodes");
        return nodes.GetProperty("items").EnumerateArray().Where(n => n.GetProperty("name").GetString() == name)
            .Select(n => n.GetProperty("state").GetString()).FirstOrDefault();
    }

    /// <summary>When the Api last heard a heartbeat of node <paramref name="name"/> (UTC, on the Api's clock, this process's), or null.</summary>
    public async Task<DateTime?> LastHeartbeatAsync(string name)
    {
        var nodes = await Admin.GetFromJsonAsync<JsonElement>("/api/v1/nodes");
        var at = nodes.GetProperty("items").EnumerateArray().Where(n => n.GetProperty("name").GetString() == name)
            .Select(n => n.GetProperty("lastHeartbeatAt")).FirstOrDefault();
        return at.ValueKind == JsonValueKind.String
            ? DateTime.Parse(at.GetString()!, System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal)
            : null;
    }

    /// <summary>Creates an app; <paramref name="readiness"/> null takes the Api's default (TCP on port 8080), <c>"process"</c> for images that listen on nothing.</summary>
    public async Task<JsonElement> CreateAppAsync(string name, string image, int instances = 1, int memoryMiB = 64, int cpuMillicores = 100,
        Dictionary<string, string>? env = null, string? readiness = null) =>
        await Admin.PostAsJsonAsync(Apps, new { name, image, instances, memoryMiB, cpuMillicores, port = 8080, env,
                readiness = readiness is null ? null : new { type = readiness } })
            .ShouldBeAsync(HttpStatusCode.Created);

    public async Task<List<JsonElement>> InstancesAsync(string app) =>
        (await Admin.GetFromJsonAsync<JsonElement>($"{Apps}/{app}/instances")).GetProperty("items").EnumerateArray().ToList();

    /// <summary>Waits until <paramref name="app"/> has <paramref name="count"/> instances in <paramref name="state"/>.</summary>
    public async Task<List<JsonElement>> WaitForInstancesAsync(string app, int count, string state = "Ready", int seconds = 90)
    {
        List<JsonElement> items = [];
        await WaitAsync(async () =>
        {
            items = await InstancesAsync(app);
            return items.Count == count && items.All(i => i.GetProperty("state").GetString() == state);
        }, seconds, () => $"{count} {state} instance(s) of {app}: {JsonSerializer.Serialize(items)}\n{AgentLogs()}");
        return items;
    }

    public string AgentLogs()
    {
        var text = string.Join("\n", _agents.Select(a => a.Env["Agent__DataDir"] + ".log").Where(File.Exists)
            .Select(f => $"--- {f}\n" + string.Join("\n", File.ReadLines(f).TakeLast(40))));
        return text;
    }

    public Router Router => Host.Services.GetRequiredService<Router>();

    /// <summary>A request to <paramref name="app"/> through the router, by its host name.</summary>
    public async Task<HttpResponseMessage> ThroughRouterAsync(string app, string path = "/")
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Router.Address!, path));
        request.Headers.Host = RouteTable.HostOf(app, Project, Team, "apps.localhost");
        return await client.SendAsync(request);
    }

    public static async Task WaitAsync(Func<Task<bool>> condition, int seconds, string what) => await WaitAsync(condition, seconds, () => what);

    public static async Task WaitAsync(Func<Task<bool>> condition, int seconds, Func<string> what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(200);
        }
        Assert.Fail($"timed out after {seconds} s waiting for {what()}");
    }

    /// <summary>Deletes every app (so the agents tear their containers down), then stops the agents.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            // Every app of every team (tests make their own teams too), so that no container outlives the test.
            var teams = await Admin.GetFromJsonAsync<JsonElement>("/api/v1/teams?limit=200");
            foreach (var team in teams.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("name").GetString()))
            {
                var projects = await Admin.GetFromJsonAsync<JsonElement>($"/api/v1/teams/{team}/projects?limit=200");
                foreach (var project in projects.GetProperty("items").EnumerateArray().Select(p => p.GetProperty("name").GetString()))
                {
                    var apps = await Admin.GetFromJsonAsync<JsonElement>($"/api/v1/teams/{team}/projects/{project}/apps?limit=200");
                    foreach (var a in apps.GetProperty("items").EnumerateArray())
                        await Admin.DeleteAsync($"/api/v1/teams/{team}/projects/{project}/apps/{a.GetProperty("name").GetString()}");
                }
            }
            await WaitAsync(() => Task.FromResult(_agents.All(a => !Directory.Exists(Path.Combine(a.Env["Agent__DataDir"], "instances"))
                || Directory.GetDirectories(Path.Combine(a.Env["Agent__DataDir"], "instances")).Length == 0)), 60, "agents to tear down");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Never mask the test's own failure with the clean-up's.
            Console.Error.WriteLine($"cluster clean-up: {e.Message}\n{AgentLogs()}");
        }
        finally
        {
            foreach (var a in _agents)
            {
                if (!a.Process.HasExited) a.Process.Kill(entireProcessTree: true);
                await a.Process.WaitForExitAsync();
            }
            // An agent frees a project's bridge just after its last instance's folder goes, so one killed right then
            // leaves the bridge (and its route) behind: a later cluster given the same subnet under another bridge name
            // (fixtures with a prefix of their own pick a random subnet) would find its instances unreachable.
            foreach (var prefix in _agents.Where(a => a.Netns is null).Select(a => a.Env["Agent__BridgePrefix"]).Where(p => p != BridgePrefix).Distinct())
            {
                var links = await Run.ToolAsync("ip", ["-o", "link", "show", "type", "bridge"]);
                foreach (var link in links.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(':', 3)[1].Trim()))
                    if (link.StartsWith(prefix, StringComparison.Ordinal) && link[prefix.Length..].All(char.IsAsciiDigit))
                        await Run.ToolAsync("ip", ["link", "delete", link]);
            }
            await Host.DisposeAsync();
        }
    }
}
