using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.Api.Routing;
using Platform.Api.Tests.Builds;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Replicas;

/// <summary>
/// Two Api replicas as an operator runs them (docs/operations.md): real processes on one PostgreSQL and one shared data
/// folder, each with its own build work folder, behind haproxy on loopback (the Api and the routers), with one node
/// agent that long-polls through the load balancer. A loopback client reads an app through the balanced routers the
/// whole time and must see no failed request while replicas are killed and restarted.
/// </summary>
[Collection("runtime")]
public sealed class TwoReplicasTests : IAsyncLifetime
{
    private const string Team = "rt", Project = "web";
    private readonly string _dir = Path.Combine("/var/tmp", "platform-replica-tests", Guid.NewGuid().ToString("N")[..8]);
    private string Shared => Path.Combine(_dir, "shared");
    private string _db = "";
    private readonly Dictionary<string, (int Api, int Router)> _ports = new() { ["a"] = (Run.FreePort(), Run.FreePort()), ["b"] = (Run.FreePort(), Run.FreePort()) };
    private readonly Dictionary<string, Process> _replicas = [];
    private readonly int _lbApi = Run.FreePort(), _lbRouter = Run.FreePort();
    private Process? _haproxy, _agent;
    private HttpClient _lb = null!;

    public async Task InitializeAsync()
    {
        try
        {
            await StartAllAsync();
        }
        catch
        {
            await DisposeAsync();   // xUnit does not dispose a fixture whose initialisation failed: no process may outlive the test
            throw;
        }
    }

    private async Task StartAllAsync()
    {
        Assert.True(Environment.UserName == "root", "replica tests run agents and builds: they need root; CI runs as root");
        Directory.CreateDirectory(Shared);
        _db = PlatformHost.CreateDatabase();
        // The first replica initialises the database (migrations, the admin); the second joins it.
        await StartReplicaAsync("a");
        await StartReplicaAsync("b");
        var config = Path.Combine(_dir, "haproxy.cfg");
        await File.WriteAllTextAsync(config, $$"""
            global
              maxconn 4000
            defaults
              mode http
              timeout connect 2s
              timeout client 90s
              timeout server 90s
              retries 3
              option redispatch 1
              retry-on conn-failure empty-response response-timeout 502 503 504
            frontend api
              bind 127.0.0.1:{{_lbApi}}
              default_backend apis
            backend apis
              balance roundrobin
              option httpchk GET /readyz
              default-server inter 500ms fall 2 rise 2
              server a 127.0.0.1:{{_ports["a"].Api}} check
              server b 127.0.0.1:{{_ports["b"].Api}} check
            frontend router
              bind 127.0.0.1:{{_lbRouter}}
              default_backend routers
            backend routers
              balance roundrobin
              default-server inter 500ms fall 2 rise 2
              server a 127.0.0.1:{{_ports["a"].Router}} check
              server b 127.0.0.1:{{_ports["b"].Router}} check
            """ + "\n");
        _haproxy = Built.Start("haproxy", ["-db", "-f", config], new Dictionary<string, string>(), Path.Combine(_dir, "haproxy.log"));
        _lb = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_lbApi}"), Timeout = TimeSpan.FromSeconds(60) };
        _lb.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", PlatformHost.AdminToken);
        await Built.WaitReadyAsync(_lb, _haproxy, 30, "the Api through haproxy");
    }

    public async Task DisposeAsync()
    {
        try
        {
            // Every app goes, and the agent tears its containers down before it stops (containers outlive their agent).
            if (_lb is not null)
                foreach (var app in new[] { "site", "built" })
                    try { await _lb.DeleteAsync($"/api/v1/teams/{Team}/projects/{Project}/apps/{app}"); } catch (HttpRequestException) { }
            var instances = Path.Combine(_dir, "agent", "instances");
            if (_agent is not null)
            {
                try
                {
                    await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(instances) || Directory.GetDirectories(instances).Length == 0), 60, "the agent to tear down");
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Console.Error.WriteLine($"replica test clean-up: {e.Message}");   // never mask the test's own failure
                }
                await StopAsync(_agent, TimeSpan.FromSeconds(20));
            }
        }
        finally
        {
            foreach (var p in _replicas.Values.Append(_haproxy).OfType<Process>())
                if (!p.HasExited) p.Kill(entireProcessTree: true);
            _lb?.Dispose();
        }
    }

    private Process StartReplicaProcess(string name) =>
        Built.Start("dotnet", [Built.Dll("Api", "Platform.Api"), "--urls", $"http://127.0.0.1:{_ports[name].Api}",
            "--contentRoot", Path.Combine(RegistryFixture.RepoRoot, "src", "Api")], new Dictionary<string, string>
        {
            ["Platform__Database__Provider"] = "Postgres",
            ["ConnectionStrings__Platform"] = _db,
            ["Platform__DataDir"] = Shared,
            ["Platform__ReplicaName"] = name,
            ["Platform__PublicUrl"] = $"http://127.0.0.1:{_lbApi}",
            ["Platform__Ingress__Url"] = $"http://127.0.0.1:{_ports[name].Router}",
            ["Platform__Bootstrap__AdminEmail"] = PlatformHost.AdminEmail,
            ["Platform__Bootstrap__AdminPassword"] = PlatformHost.AdminPassword,
            ["Platform__Bootstrap__AdminToken"] = PlatformHost.AdminToken,
            ["Platform__Nodes__HeartbeatSeconds"] = "1",
            ["Platform__Nodes__NotReadyAfterSeconds"] = "6",
            ["Platform__Nodes__ReconcileSeconds"] = "1",
            ["Platform__Builds__WorkDir"] = Path.Combine(_dir, "work-" + name),   // each replica's own, as the recipe says
            ["Platform__Builds__StaleAfterSeconds"] = "6",
            ["Platform__Builds__Bridge"] = BuildKit.BuildSettings["Platform:Builds:Bridge"]!,
            ["Platform__Builds__Subnet"] = BuildKit.BuildSettings["Platform:Builds:Subnet"]!,
            ["Platform__Builds__CgroupName"] = BuildKit.BuildSettings["Platform:Builds:CgroupName"]!,
            ["Logging__Console__FormatterName"] = "simple",
        }, Path.Combine(_dir, $"api-{name}.log"));

    private async Task StartReplicaAsync(string name)
    {
        var process = _replicas[name] = StartReplicaProcess(name);
        using var http = Direct(name);
        await Built.WaitReadyAsync(http, process, 90, $"replica {name} ready", () => Tail(name));
    }

    private HttpClient Direct(string name)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_ports[name].Api}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", PlatformHost.AdminToken);
        return http;
    }

    private string Tail(string name, int lines = 30) =>
        string.Join('\n', Built.ReadLog(Path.Combine(_dir, $"api-{name}.log")).Split('\n').TakeLast(lines));

    private static async Task StopAsync(Process p, TimeSpan grace)
    {
        if (p.HasExited) return;
        Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
        using var limit = new CancellationTokenSource(grace);
        try { await p.WaitForExitAsync(limit.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); }
    }

    private async Task<List<(string Name, string State, List<string> Roles)>> ReplicasAsync(HttpClient via) =>
        (await via.GetFromJsonAsync<JsonElement>("/api/v1/replicas")).GetProperty("items").EnumerateArray()
            .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("state").GetString()!, r.GetProperty("roles").EnumerateArray().Select(x => x.GetString()!).ToList()))
            .ToList();

    private string Apps => $"/api/v1/teams/{Team}/projects/{Project}/apps";

    private async Task<List<JsonElement>> InstancesAsync(string app) =>
        (await _lb.GetFromJsonAsync<JsonElement>($"{Apps}/{app}/instances")).GetProperty("items").EnumerateArray().ToList();

    private async Task WaitReadyAsync(string app, int count, int seconds = 90)
    {
        List<JsonElement> items = [];
        await Cluster.WaitAsync(async () =>
        {
            items = await InstancesAsync(app);
            return items.Count == count && items.All(i => i.GetProperty("state").GetString() == "Ready");
        }, seconds, () => $"{count} Ready instance(s) of {app}: {JsonSerializer.Serialize(items)}");
    }

    private async Task<string?> ClaimedByAsync(string app, int number)
    {
        await using var connection = new NpgsqlConnection(_db);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand("""SELECT b."ClaimedBy" FROM builds b JOIN apps a ON a."Id" = b."AppId" WHERE a."Name" = @app AND b."Number" = @n AND b."State" = 'Running'""", connection);
        query.Parameters.AddWithValue("app", app);
        query.Parameters.AddWithValue("n", number);
        return await query.ExecuteScalarAsync() as string;
    }

    private async Task<JsonElement> WaitBuildEndAsync(string app, int number)
    {
        JsonElement build = default;
        await Cluster.WaitAsync(async () => (build = await _lb.GetFromJsonAsync<JsonElement>($"{Apps}/{app}/builds/{number}")).GetProperty("state").GetString()
            is "Succeeded" or "Failed" or "Cancelled", 180, () => $"build #{number} of {app} to end: {build}");
        return build;
    }

    [Fact]
    public async Task Two_replicas_share_the_registry_and_builds_never_over_place_hand_roles_on_when_one_is_killed_and_lose_no_request()
    {
        // Push through A, pull through B: the registry is on the shared folder.
        var layout = Path.Combine(_dir, "busybox-layout");
        var registryA = $"127.0.0.1:{_ports["a"].Api}";
        (await Run.ToolAsync(Path.Combine(RegistryFixture.RepoRoot, "scripts", "make-base-image.sh"), [registryA, PlatformHost.AdminToken, layout]))
            .EnsureSuccess("make-base-image.sh");
        await _lb.PostAsJsonAsync("/api/v1/teams", new { name = Team }).ShouldBeAsync(HttpStatusCode.Created);
        await _lb.PutAsJsonAsync($"/api/v1/teams/{Team}/quota", new { memoryMiB = 8192, cpuMillicores = 8000, instances = 50, apps = 50, projects = 5, registryGiB = 5, concurrentBuilds = 2 })
            .ShouldBeAsync(HttpStatusCode.OK);
        await _lb.PostAsJsonAsync($"/api/v1/teams/{Team}/projects", new { name = Project }).ShouldBeAsync(HttpStatusCode.Created);
        const string Serve = "mkdir -p /tmp/www && echo {0} > /tmp/www/index.html && echo serving {0} && exec httpd -f -v -p $PORT -h /tmp/www";
        await Cluster.PushImageAsync(layout, registryA, $"{Team}/{Project}/site:1", string.Format(Serve, "one"));
        await Cluster.PushImageAsync(layout, registryA, $"{Team}/{Project}/site:2", string.Format(Serve, "two"));
        using (var b = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_ports["b"].Api}") })
        {
            b.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("admin:"u8.ToArray().Concat(System.Text.Encoding.ASCII.GetBytes(PlatformHost.AdminToken)).ToArray()));
            using var manifestRequest = new HttpRequestMessage(HttpMethod.Get, $"/v2/{Team}/{Project}/site/manifests/1");
            manifestRequest.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
            manifestRequest.Headers.Accept.ParseAdd("application/vnd.docker.distribution.manifest.v2+json");
            using var manifest = await b.SendAsync(manifestRequest);
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            var layers = JsonDocument.Parse(await manifest.Content.ReadAsStringAsync()).RootElement.GetProperty("layers");
            var digest = layers[0].GetProperty("digest").GetString()!;
            var blob = await b.GetByteArrayAsync($"/v2/{Team}/{Project}/site/blobs/{digest}");
            Assert.Equal(digest, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(blob)));
        }

        // One node, whose agent long-polls through the load balancer.
        var join = (await _lb.PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created)).GetProperty("token").GetString()!;
        _agent = Built.Start("dotnet", [NodeAgentTests.AgentDll()], Cluster.AgentEnvironment("replica-node", _lb.BaseAddress!, Path.Combine(_dir, "agent"), join),
            Path.Combine(_dir, "agent.log"));
        await Cluster.WaitAsync(async () => (await _lb.GetFromJsonAsync<JsonElement>("/api/v1/nodes")).GetProperty("items").EnumerateArray()
            .Any(n => n.GetProperty("state").GetString() == "Ready"), 60, "the node Ready");

        await _lb.PostAsJsonAsync(Apps, new { name = "site", image = $"{Team}/{Project}/site:1", instances = 2, memoryMiB = 64, cpuMillicores = 100, port = 8080 })
            .ShouldBeAsync(HttpStatusCode.Created);
        await WaitReadyAsync("site", 2);

        // The loopback client: the app through the balanced routers, all along.
        var failures = new ConcurrentQueue<string>();
        var served = 0;
        using var stopClient = new CancellationTokenSource();
        var host = RouteTable.HostOf("site", Project, Team, "apps.localhost");
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        await Cluster.WaitAsync(async () =>
        {
            using var r = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{_lbRouter}/");
            r.Headers.Host = host;
            using var response = await client.SendAsync(r);
            return response.IsSuccessStatusCode;
        }, 30, "the app through both routers");
        var reader = Task.Run(async () =>
        {
            while (!stopClient.IsCancellationRequested)
            {
                try
                {
                    using var r = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{_lbRouter}/");
                    r.Headers.Host = host;
                    using var response = await client.SendAsync(r);
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode != HttpStatusCode.OK || body.Trim() is not ("one" or "two")) failures.Enqueue($"{(int)response.StatusCode} {body.Trim()}");
                    else Interlocked.Increment(ref served);
                }
                catch (HttpRequestException e) { failures.Enqueue(e.Message); }
                await Task.Delay(10);
            }
        });

        // Scales sent through both replicas at once never place more instances than asked.
        var most = 0;
        foreach (var asked in new[] { 4, 3 })
        {
            using var a = Direct("a");
            using var b = Direct("b");
            var before = (await InstancesAsync("site")).Count;
            await Task.WhenAll(
                a.PatchAsJsonAsync($"{Apps}/site", new { instances = asked }).ShouldBeAsync(HttpStatusCode.OK),
                b.PatchAsJsonAsync($"{Apps}/site", new { instances = asked }).ShouldBeAsync(HttpStatusCode.OK));
            await Cluster.WaitAsync(async () =>
            {
                var now = await InstancesAsync("site");
                most = Math.Max(most, now.Count);
                Assert.True(now.Count <= Math.Max(before, asked), $"{now.Count} instances placed for {asked} asked: {JsonSerializer.Serialize(now)}");
                return now.Count == asked && now.All(i => i.GetProperty("state").GetString() == "Ready");
            }, 90, $"{asked} Ready instances");
        }
        Assert.Equal(4, most);

        // Placement runs on the scheduler's holder: a scale sent to the other replica is handed to it, and the answer
        // waits for the holder's pass (the instance is placed when the PATCH returns); the other replica runs no pass.
        var scheduler = (await ReplicasAsync(_lb)).Single(r => r.Roles.Contains("scheduler")).Name;
        var standby = scheduler == "a" ? "b" : "a";
        using (var viaStandby = Direct(standby))
            await viaStandby.PatchAsJsonAsync($"{Apps}/site", new { instances = 4 }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(4, (await InstancesAsync("site")).Count);
        using (var viaStandby = Direct(standby))
            await viaStandby.PatchAsJsonAsync($"{Apps}/site", new { instances = 3 }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(3, (await InstancesAsync("site")).Count);
        Assert.Contains("Placement pass over", Tail(scheduler, int.MaxValue));
        Assert.DoesNotContain("Placement pass over", Tail(standby, int.MaxValue));
        await WaitReadyAsync("site", 3);

        // Mid-rollout, the replica holding the rollouts role is SIGKILLed: the other takes its roles within 10 s and
        // finishes the rollout.
        var roles = await ReplicasAsync(_lb);
        var holder = roles.Single(r => r.Roles.Contains("rollouts")).Name;
        var other = holder == "a" ? "b" : "a";
        using var survivor = Direct(other);
        await survivor.PatchAsJsonAsync($"{Apps}/site", new { image = $"{Team}/{Project}/site:2" }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("Progressing", (await survivor.GetFromJsonAsync<JsonElement>($"{Apps}/site/rollout")).GetProperty("state").GetString());
        _replicas[holder].Kill(entireProcessTree: false);
        var killedAt = Stopwatch.StartNew();
        await Cluster.WaitAsync(async () => (await ReplicasAsync(survivor)).Single(r => r.Name == other).Roles.Order().SequenceEqual(["rollouts", "scheduler"]),
            10, $"replica {other} holding every role after {holder} was killed");
        var takeover = killedAt.Elapsed;
        JsonElement rollout = default;
        await Cluster.WaitAsync(async () => (rollout = await survivor.GetFromJsonAsync<JsonElement>($"{Apps}/site/rollout")).GetProperty("state").GetString() != "Progressing",
            120, () => $"the rollout finished by {other}: {rollout}");
        Assert.Equal("Succeeded", rollout.GetProperty("state").GetString());
        await WaitReadyAsync("site", 3);
        await Cluster.WaitAsync(async () =>
        {
            using var r = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{_lbRouter}/");
            r.Headers.Host = host;
            using var response = await client.SendAsync(r);
            return (await response.Content.ReadAsStringAsync()).Trim() == "two";
        }, 30, "the new release served");

        // The killed replica comes back under its name: it joins as a standby (the roles stay where they are).
        await StartReplicaAsync(holder);
        await Cluster.WaitAsync(async () =>
        {
            var now = await ReplicasAsync(survivor);
            return now.Count(r => r.State == "Up") == 2 && now.Single(r => r.Name == holder && r.State == "Up").Roles.Count == 0;
        }, 30, $"replica {holder} back as a standby");

        // A build run by one replica survives the other's restart; a build whose replica is SIGKILLed is retried once by the other.
        var app = await _lb.PostAsJsonAsync(Apps, new { name = "built", instances = 0, memoryMiB = 32 }).ShouldBeAsync(HttpStatusCode.Created);
        var source = await BuildKit.Source.InitAsync(Path.Combine(_dir, "src"),
            app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@"));
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo slow step && sleep 10 && echo done > /done\n" }, "one");
        string? builder = null;
        await Cluster.WaitAsync(async () => (builder = await ClaimedByAsync("built", 1)) is not null
            && (await _lb.GetStringAsync($"{Apps}/built/builds/1/log")).Contains("slow step"), 90, "build #1 in its slow step");
        var bystander = builder == "a" ? "b" : "a";
        await StopAsync(_replicas[bystander], TimeSpan.FromSeconds(30));
        await StartReplicaAsync(bystander);
        var first = await WaitBuildEndAsync("built", 1);
        var log = await _lb.GetStringAsync($"{Apps}/built/builds/1/log");
        Assert.True(first.GetProperty("state").GetString() == "Succeeded", log);
        Assert.DoesNotContain("retrying", log);

        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo slow again && sleep 10 && echo done > /done\n" }, "two");
        await Cluster.WaitAsync(async () => (builder = await ClaimedByAsync("built", 2)) is not null
            && (await _lb.GetStringAsync($"{Apps}/built/builds/2/log")).Contains("slow again"), 90, "build #2 in its slow step");
        _replicas[builder!].Kill(entireProcessTree: false);   // the Api alone: its buildah is an orphan now
        var second = await WaitBuildEndAsync("built", 2);
        log = await _lb.GetStringAsync($"{Apps}/built/builds/2/log");
        Assert.True(second.GetProperty("state").GetString() == "Succeeded", log);
        Assert.Contains("the Api running this build stopped; retrying", log);
        Assert.Equal(1, log.Split("retrying").Length - 1);

        stopClient.Cancel();
        await reader;
        Assert.True(failures.IsEmpty, $"{failures.Count} failed request(s) of {served + failures.Count}: {string.Join("; ", failures.Take(5))}");
        Assert.True(served > 100, $"the client was served {served} times");
        Console.WriteLine($"two replicas: roles taken over {takeover.TotalSeconds:F1} s after the holder was killed; {served} requests served, none failed");
    }
}
