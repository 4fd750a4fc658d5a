using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Host.Linux;

namespace Platform.Api.Tests.Builds;

/// <summary>
/// Builds under a team's limits (concurrentBuilds, time, memory), cancel, the build network (out to the
/// internet, never to this machine), and webhooks from a repository hosted elsewhere. Real git, buildah, runc.
/// </summary>
[Collection("runtime")]
public sealed class BuildIsolationTests
{
    private static async Task<Cluster> StartAsync(IDictionary<string, string?>? more = null, Provider provider = Provider.Sqlite) =>
        await Cluster.StartAsync(settings: BuildKit.BuildSettings.Concat(more ?? new Dictionary<string, string?>()).ToDictionary(), provider: provider);

    /// <summary>On both databases: the claim (count, order, advisory lock on PostgreSQL) is SQL that differs between them.</summary>
    [Theory]
    [InlineData(Provider.Sqlite)]
    [InlineData(Provider.Postgres)]
    public async Task A_team_runs_at_most_its_concurrent_builds_in_order_and_cancel_time_and_memory_limits_stop_builds(Provider provider)
    {
        await using var cluster = await StartAsync(provider: provider);
        await cluster.Admin.PutAsJsonAsync($"/api/v1/teams/{Cluster.Team}/quota", new
        {
            memoryMiB = 8192, cpuMillicores = 8000, instances = 50, apps = 50, projects = 5, registryGiB = 5, concurrentBuilds = 2,
            build = new { memoryMiB = 160, timeoutSeconds = 20 },
        }).ShouldBeAsync(HttpStatusCode.OK);
        var sleeper = new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo started && sleep 60\n" };
        var a = await BuildKit.GitAppAsync(cluster, "a");
        var b = await BuildKit.GitAppAsync(cluster, "b");
        var c = await BuildKit.GitAppAsync(cluster, "c");
        await a.PushAsync(sleeper, "a");
        await BuildKit.WaitForStateAsync(cluster, "a", 1, "Running");
        await b.PushAsync(sleeper, "b");
        await BuildKit.WaitForStateAsync(cluster, "b", 1, "Running");
        await c.PushAsync(sleeper, "c");

        // Two run; the third waits its turn.
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("Queued", (await BuildKit.BuildAsync(cluster, "c", 1)).GetProperty("state").GetString());
            await Task.Delay(750);
        }
        var team = await cluster.Admin.GetFromJsonAsync<JsonElement>($"/api/v1/teams/{Cluster.Team}");
        Assert.Equal(2, team.GetProperty("quota").GetProperty("concurrentBuilds").GetProperty("used").GetInt32());

        // Cancel: the running build's processes are killed, and the waiting one starts.
        await Cluster.WaitAsync(async () => (await cluster.Admin.GetStringAsync($"{cluster.Apps}/a/builds/1/log")).Contains("started"), 30, "a's RUN step started");
        await cluster.Admin.PostAsync($"{cluster.Apps}/a/builds/1/cancel", null).ShouldBeAsync(HttpStatusCode.Accepted);
        var cancelled = await BuildKit.WaitForBuildAsync(cluster, "a", 1, "Cancelled", 20);
        Assert.Equal($"Cancelled by {PlatformHost.AdminEmail}.", cancelled.GetProperty("reason").GetString());
        await BuildKit.WaitForStateAsync(cluster, "c", 1, "Running", 20);
        // a's processes went with its cgroup: only b's and c's remain.
        await Cluster.WaitAsync(() => Task.FromResult(BuildCgroups().Count == 2), 10, () => $"two build cgroups, not {string.Join(", ", BuildCgroups())}");
        await cluster.Admin.PostAsync($"{cluster.Apps}/a/builds/1/cancel", null).ShouldBeAsync(HttpStatusCode.Accepted);   // idempotent

        // The time limit: b (20 s) is stopped with a reason that says so.
        var timedOut = await BuildKit.WaitForBuildAsync(cluster, "b", 1, "Failed", 60);
        Assert.Contains("time limit of 20 s", timedOut.GetProperty("reason").GetString());
        // By the build's own record: it ran its whole limit (not stopped early) and was stopped before its
        // `sleep 60` step could have ended (not left to run out). Speeds are bench/BuildBench's business.
        var ran = timedOut.GetProperty("finishedAt").GetDateTime() - timedOut.GetProperty("startedAt").GetDateTime();
        Assert.True(ran >= TimeSpan.FromSeconds(20) && ran < TimeSpan.FromSeconds(60), $"b ran {ran} against its limit of 20 s");
        await cluster.Admin.PostAsync($"{cluster.Apps}/c/builds/1/cancel", null).ShouldBeAsync(HttpStatusCode.Accepted);
        await BuildKit.WaitForBuildAsync(cluster, "c", 1, "Cancelled", 20);
        await cluster.Admin.PostAsync($"{cluster.Apps}/b/builds/1/cancel", null).ShouldBeAsync(HttpStatusCode.Conflict);

        // Memory: a step that wants more than the build's 160 MiB is killed, and the reason says so.
        await a.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN dd if=/dev/zero of=/dev/null bs=400M count=1\n" }, "hog");
        var oom = await BuildKit.WaitForBuildAsync(cluster, "a", 2, "Failed", 90);
        Assert.True(oom.GetProperty("reason").GetString()!.Contains("out of memory (limit 160 MiB)"), oom.GetProperty("reason").GetString() + "\n" + await cluster.Admin.GetStringAsync($"{cluster.Apps}/a/builds/2/log"));

        // Processes: a step that forks more than the build's pids limit is refused forks, and the build fails naming the
        // limit (buildah's processes count too: the step's own exit or buildah's refused fork, whichever comes first).
        await cluster.Admin.PutAsJsonAsync($"/api/v1/teams/{Cluster.Team}/quota", new
        {
            memoryMiB = 8192, cpuMillicores = 8000, instances = 50, apps = 50, projects = 5, registryGiB = 5, concurrentBuilds = 2,
            build = new { pids = 64 },
        }).ShouldBeAsync(HttpStatusCode.OK);
        await a.PushAsync(new Dictionary<string, string>
        {
            ["Dockerfile"] = "FROM busybox\nRUN (i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done) 2>/tmp/err; head -3 /tmp/err; if grep -q fork /tmp/err; then exit 42; fi\n",
        }, "fork");
        var forks = await BuildKit.WaitForBuildAsync(cluster, "a", 3, "Failed", 90);
        Assert.True(forks.GetProperty("reason").GetString()!.StartsWith("The build reached its limit of 64 processes: ", StringComparison.Ordinal), forks + "\n" + await cluster.Admin.GetStringAsync($"{cluster.Apps}/a/builds/3/log"));
        Assert.True(BuildCgroups().Count == 0, "every build's cgroup is removed when it ends");
    }

    /// <summary>The builds' cgroups now: below the pids hierarchy on cgroup v1, below the unified one on v2.</summary>
    private static List<string> BuildCgroups() => Cgroups.Children("/" + BuildKit.BuildSettings["Platform:Builds:CgroupName"]).ToList();

    [Fact]
    public async Task A_build_step_reaches_the_outside_but_not_this_machine()
    {
        await using var cluster = await StartAsync();
        // A service listening on every address of this machine, as the Api, PostgreSQL or an agent might.
        var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var apiPort = cluster.Host.BaseAddress.Port;
        // "The outside": a web server in a network name-space of this test's own, at a public-looking address.
        const string ns = "pbtest-outside";
        var www = Path.Combine(cluster.Host.DataDir, "outside");
        Directory.CreateDirectory(www);
        await File.WriteAllTextAsync(Path.Combine(www, "hello.txt"), "hello from outside\n");
        await Sh($"ip netns delete {ns} 2>/dev/null; ip link delete pbtx0 2>/dev/null; ip netns add {ns} && ip link add pbtx0 type veth peer name eth0 netns {ns} && " +
            $"ip addr add 198.51.100.1/30 dev pbtx0 && ip link set pbtx0 up && ip -n {ns} addr add 198.51.100.2/30 dev eth0 && " +
            $"ip -n {ns} link set eth0 up && ip -n {ns} link set lo up && ip -n {ns} route add default via 198.51.100.1");
        using var httpd = Built.Start("ip", ["netns", "exec", ns, "busybox", "httpd", "-f", "-p", "8000", "-h", www], new Dictionary<string, string>(), null);
        try
        {
            var source = await BuildKit.GitAppAsync(cluster, "net");
            await source.PushAsync(new Dictionary<string, string>
            {
                ["Dockerfile"] = $"""
                    FROM busybox
                    RUN printf 'GET /hello.txt HTTP/1.0\r\n\r\n' | nc -w 10 198.51.100.2 8000
                    RUN if nc -w 3 10.255.253.1 {port} </dev/null; then echo REACHED-THE-NODE; exit 7; fi; echo node-blocked
                    RUN if nc -w 3 10.255.253.1 {apiPort} </dev/null; then echo REACHED-THE-API; exit 8; fi; echo api-blocked
                    RUN if nc -w 3 10.255.253.1 5432 </dev/null; then echo REACHED-POSTGRES; exit 9; fi; echo postgres-blocked
                    """,
            }, "network");
            await BuildKit.WaitForBuildAsync(cluster, "net", 1, "Succeeded");
            var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/net/builds/1/log");
            Assert.Contains("hello from outside", log);
            Assert.Contains("node-blocked", log);
            Assert.Contains("api-blocked", log);
            Assert.Contains("postgres-blocked", log);
            Assert.False(listener.Pending(), "nothing reached the service listening on all of this machine's addresses");
        }
        finally
        {
            listener.Stop();
            try { httpd.Kill(); } catch (InvalidOperationException) { }
            await Sh($"ip netns delete {ns}; ip link delete pbtx0 2>/dev/null; true");
        }
    }

    private static async Task Sh(string script) =>
        (await Run.ToolAsync("sh", ["-c", script])).EnsureSuccess(script);

    private static string Sign(string secret, string body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body)));

    private static async Task<HttpResponseMessage> HookAsync(Cluster cluster, string url, string body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(url).PathAndQuery) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        return await cluster.Host.Http().SendAsync(request);
    }

    [Fact]
    public async Task A_webhook_with_a_valid_signature_builds_the_repository_hosted_elsewhere_and_a_wrong_one_queues_nothing()
    {
        await using var cluster = await StartAsync(new Dictionary<string, string?> { ["Platform:Builds:AllowedSourceHosts:0"] = "127.0.0.1" });
        // "Elsewhere": another app's repository on this platform, reached over HTTP like any git server.
        var origin = await BuildKit.GitAppAsync(cluster, "origin", new { instances = 0 });
        var commit = await origin.PushAsync(new Dictionary<string, string>
        {
            ["Dockerfile"] = "FROM busybox\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n", ["hello.txt"] = "hi\n",
        }, "one");
        var originUrl = (await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/origin")).GetProperty("gitUrl").GetString()!;
        var withCredentials = originUrl.Replace("http://", $"http://git:{PlatformHost.AdminToken}@");

        var hooked = await cluster.Admin.PostAsJsonAsync(cluster.Apps, new { name = "hooked", instances = 0, sourceUrl = withCredentials, branch = "main" })
            .ShouldBeAsync(HttpStatusCode.Created);
        var secret = hooked.GetProperty("webhookSecret").GetString()!;
        var hookUrl = hooked.GetProperty("webhookUrl").GetString()!;
        Assert.DoesNotContain(PlatformHost.AdminToken, hooked.GetProperty("sourceUrl").GetString());
        Assert.Equal(JsonValueKind.Null, hooked.GetProperty("gitUrl").ValueKind);
        var again = await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/hooked");
        Assert.Equal(JsonValueKind.Null, again.GetProperty("webhookSecret").ValueKind);   // shown once

        var push = JsonSerializer.Serialize(new { @ref = "refs/heads/main", after = commit, repository = new { clone_url = originUrl } });
        using (var r = await HookAsync(cluster, hookUrl, push, ("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Sign("wrong-secret-0123456789", push))))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await HookAsync(cluster, hookUrl, push, ("X-GitHub-Event", "push")))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await HookAsync(cluster, hookUrl, push, ("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "not-the-secret")))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await HookAsync(cluster, hookUrl.Replace("/hooked", "/nosuchapp"), push, ("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Sign(secret, push))))
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        await Task.Delay(1000);
        Assert.Empty((await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/hooked/builds")).GetProperty("items").EnumerateArray());

        using (var r = await HookAsync(cluster, hookUrl, "{}", ("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", Sign(secret, "{}"))))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var other = JsonSerializer.Serialize(new { @ref = "refs/heads/feature", after = commit });
        using (var r = await HookAsync(cluster, hookUrl, other, ("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Sign(secret, other))))
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        using (var r = await HookAsync(cluster, hookUrl, push, ("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Sign(secret, push))))
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        var build = await BuildKit.WaitForBuildAsync(cluster, "hooked", 1, "Succeeded");
        Assert.Equal("webhook", build.GetProperty("trigger").GetString());
        Assert.Equal(commit, build.GetProperty("commit").GetString());
        Assert.Single((await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/hooked/builds")).GetProperty("items").EnumerateArray());
        Assert.DoesNotContain(PlatformHost.AdminToken, await cluster.Admin.GetStringAsync($"{cluster.Apps}/hooked/builds/1/log"));

        // GitLab's form of the same push, with the token header.
        var gitlab = JsonSerializer.Serialize(new { object_kind = "push", @ref = "refs/heads/main", checkout_sha = commit });
        using (var r = await HookAsync(cluster, hookUrl, gitlab, ("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", secret)))
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        await BuildKit.WaitForBuildAsync(cluster, "hooked", 2, "Succeeded");

        // A source that resolves to loopback without being allowed is refused when the build clones it.
        var sneaky = await cluster.Admin.PostAsJsonAsync(cluster.Apps, new { name = "sneaky", instances = 0, sourceUrl = withCredentials.Replace("127.0.0.1", "localhost") })
            .ShouldBeAsync(HttpStatusCode.Created);
        var sneakySecret = sneaky.GetProperty("webhookSecret").GetString()!;
        using (var r = await HookAsync(cluster, sneaky.GetProperty("webhookUrl").GetString()!, push, ("X-GitHub-Event", "push"), ("X-Hub-Signature-256", Sign(sneakySecret, push))))
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        var refused = await BuildKit.WaitForBuildAsync(cluster, "sneaky", 1, "Failed");
        Assert.Contains("loopback", refused.GetProperty("reason").GetString());
        Assert.DoesNotContain(PlatformHost.AdminToken, refused.GetProperty("reason").GetString());

        // Unsafe source URLs are refused when set, naming the field.
        foreach (var url in new[] { "file:///etc/passwd", "git://example.com/r.git", "ext::sh -c id", "http://10.1.2.3/r.git", "http://169.254.169.254/latest", "http://[::1]/r.git", "ftp://example.com/r.git" })
        {
            var problem = await cluster.Admin.PostAsJsonAsync(cluster.Apps, new { name = "bad", sourceUrl = url }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
            Assert.True(problem.GetProperty("errors").TryGetProperty("sourceUrl", out _), $"{url}: {problem}");
        }
    }
}
