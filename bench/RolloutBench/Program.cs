using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using static BenchKit;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Rollout benchmark (issue 13), as root on one machine, with the real Api and NodeAgent processes: a 4-instance
// app whose server listens 3 s after it starts is rolled out from v1 to v2 and back, under constant load (4 loopback
// clients through the router), with readiness probes (the default: TCP on the port) and with probes off (readiness
// "process": ready once running, as before issue 13), alternating. Per rollout: the time from the PATCH until all 4
// new instances are Ready and the old ones gone, and the requests that failed during it. Medians over N rounds.
// Usage: dotnet bench/RolloutBench/bin/Release/net10.0/RolloutBench.dll <repo root> [rounds]
var repo = Path.GetFullPath(args.ElementAtOrDefault(0) ?? ".");
var rounds = int.Parse(args.ElementAtOrDefault(1) ?? "3");
var work = Path.Combine("/var/tmp", "rollout-bench-" + Guid.NewGuid().ToString("N")[..6]);
Directory.CreateDirectory(work);
const string Token = "plat_rollout_bench_token_0123456789abcdef";
var processes = new List<Process>();
var apiPort = FreePort();
var routerPort = FreePort();
var api = new Uri($"http://127.0.0.1:{apiPort}/");
var router = new Uri($"http://127.0.0.1:{routerPort}/");
var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(60) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);

try
{
    Console.Error.WriteLine($"==> Api on {api}, router on {router}, scratch {work}");
    processes.Add(Start(Path.Combine(repo, "src/Api/bin/Release/net10.0/Platform.Api.dll"), new()
    {
        ["Platform__DataDir"] = Path.Combine(work, "api"), ["Platform__Bootstrap__AdminEmail"] = "admin@bench.local",
        ["Platform__Bootstrap__AdminPassword"] = "bench-password-1", ["Platform__Bootstrap__AdminToken"] = Token,
        ["Platform__Ingress__Url"] = router.ToString(), ["Platform__Nodes__HeartbeatSeconds"] = "2", ["ASPNETCORE_URLS"] = api.ToString(),
        ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "api.log")));
    await Until(async () => (await Try(() => http.GetAsync("healthz")))?.IsSuccessStatusCode == true, 60, "the Api");
    await Check(Tool(Path.Combine(repo, "scripts/make-base-image.sh"), $"127.0.0.1:{apiPort}", Token, Path.Combine(work, "layout")));
    var layout = Path.Combine(work, "layout");
    var baseTag = (await Check(Tool("umoci", "ls", "--layout", layout))).Split('\n', StringSplitOptions.RemoveEmptyEntries).First(t => t != "latest");
    (await http.PostAsJsonAsync("api/v1/teams", new { name = "bench" })).EnsureSuccessStatusCode();
    (await http.PutAsJsonAsync("api/v1/teams/bench/quota", new { memoryMiB = 100_000, cpuMillicores = 100_000, instances = 1000, apps = 10, projects = 2, registryGiB = 5, concurrentBuilds = 2 })).EnsureSuccessStatusCode();
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects", new { name = "p" })).EnsureSuccessStatusCode();
    foreach (var v in new[] { "v1", "v2" })
    {
        await Check(Tool("umoci", "config", "--image", $"{layout}:{baseTag}", "--tag", v, "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd",
            $"sleep 3 && mkdir -p /tmp/www && echo {v} > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www"));
        await Check(Tool("skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bench:" + Token, $"oci:{layout}:{v}", $"docker://127.0.0.1:{apiPort}/bench/p/web:{v}"));
    }
    var join = await (await http.PostAsJsonAsync("api/v1/nodes/join-tokens", new { })).Content.ReadFromJsonAsync<JsonElement>();
    processes.Add(Start(Path.Combine(repo, "src/NodeAgent/bin/Release/net10.0/Platform.NodeAgent.dll"), new()
    {
        ["Agent__ApiUrl"] = api.ToString(), ["Agent__JoinToken"] = join.GetProperty("token").GetString()!, ["Agent__NodeName"] = "bench",
        ["Agent__DataDir"] = Path.Combine(work, "agent"), ["Agent__BridgePrefix"] = "pbo", ["Agent__PortRangeStart"] = "44000", ["Agent__PortRangeSize"] = "2000",
        ["Agent__SubnetBase"] = "140", ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "agent.log")));
    await Until(async () => (await http.GetFromJsonAsync<JsonElement>("api/v1/nodes")).GetProperty("items").EnumerateArray()
        .Any(n => n.GetProperty("state").GetString() == "Ready"), 60, "the node");

    var results = new Dictionary<string, List<(double Ms, long Failed, long Total)>> { ["probes"] = [], ["no probes"] = [] };
    var apps = new Dictionary<string, string> { ["probes"] = "probed", ["no probes"] = "unprobed" };
    foreach (var (mode, name) in apps)
    {
        object? readiness = mode == "probes" ? null : new { type = "process" };
        (await http.PostAsJsonAsync("api/v1/teams/bench/projects/p/apps", new { name, image = "bench/p/web:v1", instances = 4, memoryMiB = 32, cpuMillicores = 50, port = 8080, readiness }))
            .EnsureSuccessStatusCode();
        await Until(() => AllReadyAsync(name, null), 180, $"{name}'s first instances");
    }
    for (var round = 0; round < rounds; round++)
        foreach (var (mode, name) in apps)
        {
            var to = round % 2 == 0 ? "v2" : "v1";
            results[mode].Add(await RolloutAsync(name, $"bench/p/web:{to}"));
            Console.Error.WriteLine($"    {mode}, round {round + 1}: {results[mode][^1].Ms:F0} ms, {results[mode][^1].Failed} of {results[mode][^1].Total} failed");
        }

    Console.WriteLine($"Rollout of a 4-instance app (server listens 3 s after start), under 4 loopback clients through the router; {rounds} rounds, medians");
    Console.WriteLine("| Readiness | PATCH → all 4 new Ready, old gone | requests during it | failed (median, max) |");
    Console.WriteLine("|---|---:|---:|---:|");
    foreach (var (mode, list) in results)
        Console.WriteLine($"| {mode} | {Median(list.Select(r => r.Ms)):F0} ms | {Median(list.Select(r => (double)r.Total)):F0} | {Median(list.Select(r => (double)r.Failed)):F0}, {list.Max(r => r.Failed)} |");

    // Tear down as a user would (the project deleted), and wait until the node has stopped and removed every
    // instance before the processes go: a killed agent would leave its instances' mounts and name-spaces behind.
    (await http.DeleteAsync("api/v1/teams/bench/projects/p")).EnsureSuccessStatusCode();
    var instancesDir = Path.Combine(work, "agent", "instances");
    await Until(() => Task.FromResult(!Directory.Exists(instancesDir) || Directory.GetDirectories(instancesDir).Length == 0), 120, "the node to remove every instance");
    var leftMounts = File.ReadLines("/proc/self/mounts").Count(l => l.Contains(work, StringComparison.Ordinal));
    if (leftMounts > 0) throw new InvalidOperationException($"{leftMounts} mount(s) under {work} left after every instance was removed");

    async Task<(double, long, long)> RolloutAsync(string app, string image)
    {
        using var stop = new CancellationTokenSource();
        long total = 0, failed = 0;
        var host = $"{app}-p-bench.apps.localhost";
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            while (!stop.IsCancellationRequested)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, router);
                request.Headers.Host = host;
                try
                {
                    using var response = await client.SendAsync(request);
                    if (response.StatusCode != HttpStatusCode.OK) Interlocked.Increment(ref failed);
                }
                catch (HttpRequestException) { Interlocked.Increment(ref failed); }
                Interlocked.Increment(ref total);
            }
        })).ToList();
        var generation = (await http.GetFromJsonAsync<JsonElement>($"api/v1/teams/bench/projects/p/apps/{app}/rollout")).GetProperty("generation").GetInt32();
        var clock = Stopwatch.StartNew();
        (await http.PatchAsJsonAsync($"api/v1/teams/bench/projects/p/apps/{app}", new { image })).EnsureSuccessStatusCode();
        await Until(() => AllReadyAsync(app, generation + 1), 300, $"{app} generation {generation + 1}", TimeSpan.FromMilliseconds(100));
        var ms = clock.Elapsed.TotalMilliseconds;
        await Task.Delay(TimeSpan.FromSeconds(3));   // the old instances' drain and stop happen under the same load
        stop.Cancel();
        await Task.WhenAll(load);
        return (ms, failed, total);
    }

    async Task<bool> AllReadyAsync(string app, int? generation)
    {
        var items = (await http.GetFromJsonAsync<JsonElement>($"api/v1/teams/bench/projects/p/apps/{app}/instances")).GetProperty("items").EnumerateArray().ToList();
        return items.Count == 4 && items.All(i => i.GetProperty("state").GetString() == "Ready" && (generation is null || i.GetProperty("generation").GetInt32() == generation));
    }
}
finally
{
    foreach (var p in processes.Where(p => !p.HasExited)) { p.Kill(entireProcessTree: true); p.WaitForExit(); }
    Console.Error.WriteLine($"==> logs kept in {work} (api.log, agent.log); remove it with rm -rf when done");
}
