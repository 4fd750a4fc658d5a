using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Rollouts;

/// <summary>
/// Rollouts gated on readiness, on a real node (runc, CNI, the router): an app that needs seconds before it listens
/// is replaced under constant load without a failed request; a failing liveness probe restarts an instance; a
/// stopping instance gets SIGTERM and its grace period, so the request it is serving finishes.
/// </summary>
[Collection("runtime")]
public sealed class HealthGatedRolloutTests : IAsyncLifetime
{
    private Cluster _cluster = null!;
    private const string Node = "ro-node";

    public async Task InitializeAsync()
    {
        _cluster = await Cluster.StartAsync();
        await _cluster.StartAgentAsync(Node, maxStopGraceSeconds: 30);
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    /// <summary>A web server that serves <paramref name="body"/> on $PORT, but only <paramref name="after"/> seconds after it starts.</summary>
    private static string SlowWeb(string body, int after) =>
        $"sleep {after} && mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";

    [Fact]
    public async Task An_app_that_listens_3_s_after_it_starts_is_rolled_out_under_constant_load_without_a_failed_request()
    {
        var v1 = await _cluster.ImageAsync("slow-v1", SlowWeb("v1", 3));
        var v2 = await _cluster.ImageAsync("slow-v2", SlowWeb("v2", 3));
        await _cluster.CreateAppAsync("slow", v1, instances: 2);   // the default readiness probe: TCP on the app's port
        var first = await _cluster.WaitForInstancesAsync("slow", 2);
        Assert.All(first, i => Assert.Equal(1, i.GetProperty("generation").GetInt32()));

        // Constant load from four loopback clients through the router, counting every answer that is not 200.
        var host = RouteTable.HostOf("slow", Cluster.Project, Cluster.Team, "apps.localhost");
        using var stop = new CancellationTokenSource();
        long ok = 0, failed = 0;
        var bodies = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        async Task LoadAsync()
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, _cluster.Router.Address);
                    request.Headers.Host = host;
                    using var response = await client.SendAsync(request, CancellationToken.None);
                    var body = (await response.Content.ReadAsStringAsync()).Trim();
                    if (response.StatusCode == HttpStatusCode.OK) { Interlocked.Increment(ref ok); bodies.AddOrUpdate(body, 1, (_, n) => n + 1); }
                    else { Interlocked.Increment(ref failed); failures.Enqueue($"{(int)response.StatusCode} {body}"); }
                }
                catch (HttpRequestException e)
                {
                    Interlocked.Increment(ref failed);
                    failures.Enqueue(e.Message);
                }
            }
        }
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(LoadAsync)).ToList();
        await Cluster.WaitAsync(() => Task.FromResult(Interlocked.Read(ref ok) >= 500), 60, "the load to get going on v1");

        // The rollout: new instances start beside the old ones, are routed once they listen, and the old ones go after.
        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/slow", new { image = v2 }).ShouldBeAsync(HttpStatusCode.OK);
        await Cluster.WaitAsync(async () =>
        {
            var now = await _cluster.InstancesAsync("slow");
            return now.Count == 2 && now.All(i => i.GetProperty("generation").GetInt32() == 2 && i.GetProperty("state").GetString() == "Ready");
        }, 120, "generation 2 to replace generation 1");
        // Past the old instances' stop (1 s drain, SIGTERM, grace) and at least 10,000 requests in all.
        await Cluster.WaitAsync(() => Task.FromResult(Interlocked.Read(ref ok) + Interlocked.Read(ref failed) >= 10_000 && bodies.GetValueOrDefault("v2") >= 2_000),
            300, () => $"10,000 requests ({ok} ok, {failed} failed)");
        stop.Cancel();
        await Task.WhenAll(load);

        Assert.True(failed == 0, $"{failed} of {ok + failed} requests failed: {string.Join("; ", failures.Take(10))}");
        Assert.True(bodies.GetValueOrDefault("v1") > 0 && bodies.GetValueOrDefault("v2") > 0, string.Join(", ", bodies));
        var app = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/slow");
        Assert.Equal(2, app.GetProperty("status").GetProperty("ready").GetInt32());
    }

    [Fact]
    public async Task A_version_that_never_listens_is_rolled_back_by_itself_at_its_deadline_without_a_failed_request()
    {
        var good = await _cluster.ImageAsync("steady-v1", SlowWeb("v1", 0));
        var never = await _cluster.ImageAsync("steady-v2", "echo starting but never listening; sleep 3600");
        await _cluster.Admin.PostAsJsonAsync(_cluster.Apps, new { name = "steady", image = good, instances = 2, memoryMiB = 64, port = 8080, progressDeadlineSeconds = 15 })
            .ShouldBeAsync(HttpStatusCode.Created);
        await _cluster.WaitForInstancesAsync("steady", 2);
        await Cluster.WaitAsync(async () => (await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady/rollout")).GetProperty("state").GetString() == "Succeeded",
            30, "the first rollout to succeed (it becomes the last good spec)");

        using var stop = new CancellationTokenSource();
        long ok = 0, failed = 0;
        var load = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var r = await _cluster.ThroughRouterAsync("steady");
                    if (r.StatusCode == HttpStatusCode.OK && (await r.Content.ReadAsStringAsync()).Trim() == "v1") Interlocked.Increment(ref ok);
                    else Interlocked.Increment(ref failed);
                }
                catch (HttpRequestException) { Interlocked.Increment(ref failed); }
            }
        })).ToList();

        var patched = await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/steady", new { image = never, env = new Dictionary<string, string?> { ["MODE"] = "broken" } })
            .ShouldBeAsync(HttpStatusCode.OK);
        var progressing = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady/rollout");
        Assert.Equal(("Progressing", 2), (progressing.GetProperty("state").GetString(), progressing.GetProperty("generation").GetInt32()));
        Assert.StartsWith("rolling out 0/2", (await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady")).GetProperty("status").GetProperty("message").GetString());

        // The deadline passes: generation 2 is rolled back to generation 1's image and env as generation 3, by itself.
        JsonElement rolled = default;
        await Cluster.WaitAsync(async () =>
        {
            var releases = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady/releases");
            rolled = releases.GetProperty("items").EnumerateArray().First(r => r.GetProperty("version").GetInt32() == 2);
            return rolled.GetProperty("failureReason").ValueKind == JsonValueKind.String;
        }, 60, () => $"release v2 marked failed: {rolled}");
        Assert.StartsWith("2 of 2 new instance(s) not ready within 15 s: readiness: connection refused on :8080", rolled.GetProperty("failureReason").GetString());
        await Cluster.WaitAsync(async () =>
        {
            var now = await _cluster.InstancesAsync("steady");
            return now.Count == 2 && now.All(i => i.GetProperty("generation").GetInt32() == 3 && i.GetProperty("state").GetString() == "Ready");
        }, 60, "generation 3 (the rollback) Ready");
        var app = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady");
        Assert.Equal(good, app.GetProperty("image").GetString()![..good.Length]);
        Assert.False(app.GetProperty("env").TryGetProperty("MODE", out _), "the env went back too");
        var rollout = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady/rollout");
        Assert.Equal((3, 2), (rollout.GetProperty("generation").GetInt32(), rollout.GetProperty("rollbackOf").GetInt32()));
        stop.Cancel();
        await Task.WhenAll(load);
        Assert.True(failed == 0 && ok > 0, $"{failed} failed of {ok + failed}");

        // Events and the audit log say so.
        var events = (await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/steady/events?limit=100")).GetProperty("items")
            .EnumerateArray().Select(e => (Kind: e.GetProperty("kind").GetString(), Message: e.GetProperty("message").GetString()!)).ToList();
        Assert.Contains(events, e => e.Kind == "RolledBack" && e.Message.StartsWith("generation 2 rolled back to generation 3", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Kind == "RolloutStarted" && e.Message.StartsWith("generation 2 rolling out: release v2", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Kind == "InstanceReady");
        var audit = await _cluster.Admin.GetStringAsync($"/api/v1/teams/{Cluster.Team}/audit");
        Assert.Contains("rollouts.rollback", audit);
    }

    /// <summary>Clients sending requests through the router to an app until disposed, counting what did not come back 200 with <c>expect</c>.</summary>
    private sealed class RouterLoad : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _clients;
        private long _ok, _failed;
        public System.Collections.Concurrent.ConcurrentQueue<string> Failures { get; } = new();
        public long Ok => Interlocked.Read(ref _ok);
        public long Failed => Interlocked.Read(ref _failed);

        public RouterLoad(Cluster cluster, string app, int clients, Func<string, bool> expect) =>
            _clients = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    try
                    {
                        using var r = await cluster.ThroughRouterAsync(app);
                        var body = (await r.Content.ReadAsStringAsync()).Trim();
                        if (r.StatusCode == HttpStatusCode.OK && expect(body)) Interlocked.Increment(ref _ok);
                        else { Interlocked.Increment(ref _failed); Failures.Enqueue($"{(int)r.StatusCode} {body}"); }
                    }
                    catch (HttpRequestException e) { Interlocked.Increment(ref _failed); Failures.Enqueue(e.Message); }
                }
            })).ToList();

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await Task.WhenAll(_clients);
        }
    }

    /// <summary>
    /// Rolls app <paramref name="app"/> (3 instances, serving v1) out to v2 under load with the team's quota at <paramref name="quotaInstances"/>
    /// instances, watching every instance list until generation 2 serves in full: returns the most instances placed at once, the fewest
    /// Ready at once, and the rollout's <c>pace</c> as it said it.
    /// </summary>
    private async Task<(int MostPlaced, int FewestReady, string? Pace)> RollOutUnderQuotaAsync(string app, int quotaInstances)
    {
        var v1 = await _cluster.ImageAsync($"{app}-v1", SlowWeb("v1", 2));
        var v2 = await _cluster.ImageAsync($"{app}-v2", SlowWeb("v2", 2));
        await _cluster.Admin.PutAsJsonAsync($"/api/v1/teams/{Cluster.Team}/quota",
            new { memoryMiB = 8192, cpuMillicores = 8000, instances = quotaInstances, apps = 50, projects = 5, registryGiB = 5, concurrentBuilds = 2 }).ShouldBeAsync(HttpStatusCode.OK);
        await _cluster.CreateAppAsync(app, v1, instances: 3);
        await _cluster.WaitForInstancesAsync(app, 3);
        await using var load = new RouterLoad(_cluster, app, 2, body => body is "v1" or "v2");
        await Cluster.WaitAsync(() => Task.FromResult(load.Ok >= 200), 60, "the load to get going on v1");

        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/{app}", new { image = v2 }).ShouldBeAsync(HttpStatusCode.OK);
        int most = 0, fewest = int.MaxValue;
        string? pace = null;
        await Cluster.WaitAsync(async () =>
        {
            var now = await _cluster.InstancesAsync(app);
            most = Math.Max(most, now.Count);
            fewest = Math.Min(fewest, now.Count(i => i.GetProperty("state").GetString() == "Ready"));
            var rollout = await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/{app}/rollout");
            if (rollout.GetProperty("pace").GetString() is { } said) pace = said;
            return rollout.GetProperty("state").GetString() == "Succeeded";
        }, 120, () => $"generation 2 to replace generation 1 ({most} placed at most)");
        await Cluster.WaitAsync(() => Task.FromResult(load.Ok >= 400), 60, "requests after the rollout");
        await load.DisposeAsync();
        Assert.True(load.Failed == 0, $"{load.Failed} of {load.Ok + load.Failed} requests failed: {string.Join("; ", load.Failures.Take(10))}");
        var after = await _cluster.InstancesAsync(app);
        Assert.True(after.Count == 3 && after.All(i => i.GetProperty("generation").GetInt32() == 2), string.Join("\n", after));
        return (most, fewest, pace);
    }

    [Fact]
    public async Task A_quota_with_room_for_one_more_instance_makes_the_rollout_go_one_at_a_time_and_say_so_without_a_failed_request()
    {
        var (most, fewest, pace) = await RollOutUnderQuotaAsync("paced", quotaInstances: 4);
        Assert.Equal(4, most);   // one new beside the three old: the quota's room, and no more
        Assert.True(fewest >= 3, $"{fewest} Ready at the lowest");
        Assert.Equal($"rolling out one at a time: the quota of team {Cluster.Team} leaves room for 1 new instance(s) beside the old ones", pace);
    }

    [Fact]
    public async Task A_quota_with_no_room_makes_the_rollout_stop_one_old_instance_before_each_new_one_without_a_failed_request()
    {
        var (most, fewest, pace) = await RollOutUnderQuotaAsync("tight", quotaInstances: 3);
        Assert.Equal(3, most);   // never beyond the quota
        Assert.True(fewest >= 2, $"{fewest} Ready at the lowest: one short at most");
        Assert.Equal($"rolling out one at a time: the quota of team {Cluster.Team} leaves room for no new instance(s) beside the old ones; an old instance stops before each new one starts", pace);
    }

    [Fact]
    public async Task A_rollout_in_progress_can_be_cancelled_which_rolls_it_back()
    {
        var good = await _cluster.ImageAsync("undo-v1", SlowWeb("v1", 0));
        var slow = await _cluster.ImageAsync("undo-v2", SlowWeb("v2", 600));
        await _cluster.CreateAppAsync("undo", good);
        await _cluster.WaitForInstancesAsync("undo", 1);
        await Cluster.WaitAsync(async () => (await _cluster.Admin.GetFromJsonAsync<JsonElement>($"{_cluster.Apps}/undo/rollout")).GetProperty("state").GetString() == "Succeeded",
            30, "the first rollout to succeed");
        // Nothing to cancel now: 409 naming the rollout.
        var none = await _cluster.Admin.PostAsync($"{_cluster.Apps}/undo/rollout/cancel", null);
        Assert.Equal(HttpStatusCode.Conflict, none.StatusCode);
        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/undo", new { image = slow }).ShouldBeAsync(HttpStatusCode.OK);
        var cancelled = await _cluster.Admin.PostAsync($"{_cluster.Apps}/undo/rollout/cancel", null).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal("Cancelled", cancelled.GetProperty("state").GetString());
        Assert.StartsWith($"cancelled by {PlatformHost.AdminEmail}, rolled back to generation 3", cancelled.GetProperty("message").GetString());
        await Cluster.WaitAsync(async () =>
        {
            var now = await _cluster.InstancesAsync("undo");
            return now.Count == 1 && now.All(i => i.GetProperty("generation").GetInt32() == 3 && i.GetProperty("state").GetString() == "Ready");
        }, 60, "the rollback's generation Ready");
        using var served = await _cluster.ThroughRouterAsync("undo");
        Assert.Equal("v1", (await served.Content.ReadAsStringAsync()).Trim());
    }

    [Fact]
    public async Task The_readiness_probe_keeps_a_new_instance_out_of_the_rotation_until_it_listens_and_names_what_it_found()
    {
        var image = await _cluster.ImageAsync("late", SlowWeb("late", 4));
        await _cluster.Admin.PostAsJsonAsync(_cluster.Apps, new
        {
            name = "late", image, instances = 1, memoryMiB = 64, port = 8080,
            readiness = new { type = "http", path = "/index.html", intervalSeconds = 1, failureThreshold = 2 },
        }).ShouldBeAsync(HttpStatusCode.Created);
        // While it sleeps: the process runs, it is Starting with the probe's words, and the router has nothing for it.
        var starting = (await _cluster.WaitForInstancesAsync("late", 1, "Starting")).Single();
        await Cluster.WaitAsync(async () => (await _cluster.InstancesAsync("late")).Single().GetProperty("message").GetString()?.StartsWith("readiness: connection refused on :8080", StringComparison.Ordinal) == true,
            30, "the probe's words");
        var refused = await _cluster.ThroughRouterAsync("late");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        // Once it listens: Ready and served (the positive control for the refusal above).
        await _cluster.WaitForInstancesAsync("late", 1);
        var served = await _cluster.ThroughRouterAsync("late");
        Assert.Equal("late", (await served.Content.ReadAsStringAsync()).Trim());
        Assert.Equal(starting.GetProperty("id").GetString(), (await _cluster.InstancesAsync("late")).Single().GetProperty("id").GetString());
    }

    /// <summary>
    /// Runs <paramref name="command"/> inside instance <paramref name="instanceId"/>, in its user and mount name-spaces, as a person at the
    /// node would (runc exec cannot join the agent's named network name-space from the container's user name-space, nor does it need to).
    /// </summary>
    private async Task<string> InsideAsync(string instanceId, string command)
    {
        var state = await Run.ToolAsync("runc", ["--root", Path.Combine(_cluster.AgentDataDir(Node), "runc"), "state", Guid.Parse(instanceId).ToString("N")]);
        var pid = JsonDocument.Parse(state.EnsureSuccess("runc state").Stdout).RootElement.GetProperty("pid").GetInt32();
        var result = await Run.ToolAsync("nsenter", ["-t", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "-m", "--", "sh", "-c", command]);
        return result.EnsureSuccess($"nsenter {command}").Stdout.Trim();
    }

    [Fact]
    public async Task A_Ready_instance_whose_readiness_fails_leaves_the_rotation_and_returns_when_it_passes_again()
    {
        // Each instance serves its own random name; /ready is what the readiness probe asks for.
        var image = await _cluster.ImageAsync("flaky", "mkdir -p /tmp/www && cat /proc/sys/kernel/random/uuid > /tmp/www/index.html && echo up > /tmp/www/ready && exec httpd -f -p $PORT -h /tmp/www");
        await _cluster.Admin.PostAsJsonAsync(_cluster.Apps, new
        {
            name = "flaky", image, instances = 2, memoryMiB = 64, port = 8080,
            readiness = new { type = "http", path = "/ready", intervalSeconds = 1, failureThreshold = 1, successThreshold = 1 },
        }).ShouldBeAsync(HttpStatusCode.Created);
        var instances = await _cluster.WaitForInstancesAsync("flaky", 2);
        var (sick, well) = (instances[0].GetProperty("id").GetString()!, instances[1].GetProperty("id").GetString()!);
        var (sickName, wellName) = (await InsideAsync(sick, "cat /tmp/www/index.html"), await InsideAsync(well, "cat /tmp/www/index.html"));

        async Task<HashSet<string>> ServedAsync(int requests)
        {
            var served = new HashSet<string>();
            for (var n = 0; n < requests; n++)
            {
                using var r = await _cluster.ThroughRouterAsync("flaky");
                Assert.True(r.StatusCode == HttpStatusCode.OK, $"request {n}: {(int)r.StatusCode}");
                served.Add((await r.Content.ReadAsStringAsync()).Trim());
            }
            return served;
        }
        // Both serve while both are Ready (the control: the router does reach the instance about to fail).
        await Cluster.WaitAsync(async () => (await ServedAsync(10)).SetEquals([sickName, wellName]), 30, "both instances in the rotation");

        await InsideAsync(sick, "rm /tmp/www/ready");
        JsonElement seen = default;
        await Cluster.WaitAsync(async () =>
        {
            seen = (await _cluster.InstancesAsync("flaky")).Single(i => i.GetProperty("id").GetString() == sick);
            return seen.GetProperty("state").GetString() == "NotReady";
        }, 30, () => $"the instance to turn NotReady: {seen}");
        Assert.StartsWith("readiness: HTTP 404 on /ready", seen.GetProperty("message").GetString());
        // Out of the rotation, and nothing fails: every request goes to the one still Ready.
        await Cluster.WaitAsync(async () => (await ServedAsync(10)).SetEquals([wellName]), 30, "the NotReady instance to leave the rotation");
        Assert.Equal([wellName], await ServedAsync(40));

        await InsideAsync(sick, "echo up > /tmp/www/ready");
        await Cluster.WaitAsync(async () => (await ServedAsync(10)).SetEquals([sickName, wellName]), 30, "the instance to return to the rotation");
        var back = (await _cluster.InstancesAsync("flaky")).Single(i => i.GetProperty("id").GetString() == sick);
        Assert.Equal("Ready", back.GetProperty("state").GetString());
        Assert.Equal(0, back.GetProperty("restarts").GetInt32());   // readiness never restarts: the same process came back
    }

    [Fact]
    public async Task A_failing_liveness_probe_restarts_the_instance_with_reason_Unhealthy()
    {
        // /live answers for 4 s after each start, then 404s.
        var image = await _cluster.ImageAsync("sick", "mkdir -p /tmp/www; echo ok > /tmp/www/live; (sleep 4; rm /tmp/www/live) & exec httpd -f -p $PORT -h /tmp/www");
        await _cluster.Admin.PostAsJsonAsync(_cluster.Apps, new
        {
            name = "sick", image, instances = 1, memoryMiB = 64, port = 8080, stopGraceSeconds = 1,
            liveness = new { type = "http", path = "/live", intervalSeconds = 1, failureThreshold = 2 },
        }).ShouldBeAsync(HttpStatusCode.Created);
        var ready = (await _cluster.WaitForInstancesAsync("sick", 1)).Single();
        JsonElement restarted = default;
        await Cluster.WaitAsync(async () =>
        {
            restarted = (await _cluster.InstancesAsync("sick")).Single();
            return restarted.GetProperty("restarts").GetInt32() >= 1;
        }, 60, () => $"a liveness restart: {restarted}");
        Assert.Equal("Unhealthy", restarted.GetProperty("reason").GetString());
        Assert.Equal(ready.GetProperty("id").GetString(), restarted.GetProperty("id").GetString());   // the same instance, restarted in place
        Assert.True(restarted.GetProperty("message").GetString()!.Contains("liveness: HTTP 404 on /live (expected 200–399) (2 of 2); restarting"),
            restarted + "\n" + _cluster.AgentLogs());
    }

    [Fact]
    public async Task A_stopping_instance_gets_SIGTERM_and_its_grace_period_so_the_request_it_serves_finishes()
    {
        // A CGI request takes 3 s; on SIGTERM the app's shell waits 5 s before it exits (its grace is 10 s).
        const string Cgi = "mkdir -p /tmp/www/cgi-bin && printf '#!/bin/sh\\nsleep 3\\necho Content-Type: text/plain\\necho\\necho finished\\n' > /tmp/www/cgi-bin/slow && chmod +x /tmp/www/cgi-bin/slow";
        var image = await _cluster.ImageAsync("grace", $"{Cgi} && trap 'echo got TERM; sleep 5; exit 0' TERM; httpd -f -p $PORT -h /tmp/www & wait; wait");
        await _cluster.CreateAppAsync("grace", image);
        await _cluster.WaitForInstancesAsync("grace", 1);

        var inFlight = _cluster.ThroughRouterAsync("grace", "/cgi-bin/slow");
        await Task.Delay(TimeSpan.FromMilliseconds(300));   // the request has reached the app (it takes 3 s)
        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/grace", new { instances = 0 }).ShouldBeAsync(HttpStatusCode.OK);
        await Cluster.WaitAsync(async () => (await _cluster.InstancesAsync("grace")).Count == 0, 30, "the instance to leave the desired state");
        using var response = await inFlight;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("finished", (await response.Content.ReadAsStringAsync()).Trim());
        await Cluster.WaitAsync(() => Task.FromResult(!Directory.Exists(Path.Combine(_cluster.AgentDataDir(Node), "instances"))
            || Directory.GetDirectories(Path.Combine(_cluster.AgentDataDir(Node), "instances")).Length == 0), 30, "the instance gone from the node");

        // The control: with a grace of 1 s, SIGKILL comes before the request is done and it fails.
        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/grace", new { instances = 1, stopGraceSeconds = 1 }).ShouldBeAsync(HttpStatusCode.OK);
        await _cluster.WaitForInstancesAsync("grace", 1);
        var cut = _cluster.ThroughRouterAsync("grace", "/cgi-bin/slow");
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        await _cluster.Admin.PatchAsJsonAsync($"{_cluster.Apps}/grace", new { instances = 0 }).ShouldBeAsync(HttpStatusCode.OK);
        using var lost = await cut;
        Assert.NotEqual(HttpStatusCode.OK, lost.StatusCode);
    }
}
