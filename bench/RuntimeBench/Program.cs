using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Platform.Host.Linux;
using static BenchKit;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Runtime benchmark (issue 4), as root on one machine, with the real Api and NodeAgent processes:
//  1. instance start with the image cached: the app scaled 0 → 1, until its first HTTP 200 through the
//     router, against the tools alone (RawRuntime: `ip netns add`, the CNI plugins run by hand with JSON
//     on stdin, `runc run -d`) on the same bundle until its first 200 on the host port, alternating,
//     N rounds each; medians and their ratio; and the app scaled 1 → 0 until the router stops serving it;
//  2. a CPU-bound instance of 250 millicores: the share of a CPU it gets and how often it was throttled;
//  3. 100 instances on one node: scale 0 → 100, time until every instance answers on its host port,
//     and the agent's RSS (current and peak).
// Usage: dotnet run -c Release --project bench/RuntimeBench -- <repo root> [rounds] [instances]
var repo = Path.GetFullPath(args.ElementAtOrDefault(0) ?? ".");
var rounds = int.Parse(args.ElementAtOrDefault(1) ?? "7");
var many = int.Parse(args.ElementAtOrDefault(2) ?? "100");
var work = Path.Combine("/var/tmp", "runtime-bench-" + Guid.NewGuid().ToString("N")[..6]);
Directory.CreateDirectory(work);
const string Token = "plat_runtime_bench_token_0123456789abcdef";
const string Command = "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
var processes = new List<Process>();
var apiPort = FreePort();
var routerPort = FreePort();
var api = new Uri($"http://127.0.0.1:{apiPort}/");
var router = new Uri($"http://127.0.0.1:{routerPort}/");
var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(60) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
var probe = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero, ConnectTimeout = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(2) };

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
    await Check(Tool("umoci", "config", "--image", $"{layout}:{baseTag}", "--tag", "web", "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", Command));
    (await http.PostAsJsonAsync("api/v1/teams", new { name = "bench" })).EnsureSuccessStatusCode();
    (await http.PutAsJsonAsync("api/v1/teams/bench/quota", new { memoryMiB = 100_000, cpuMillicores = 100_000, instances = 1000, apps = 10, projects = 2, registryGiB = 5, concurrentBuilds = 2 })).EnsureSuccessStatusCode();
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects", new { name = "p" })).EnsureSuccessStatusCode();
    await Check(Tool("skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bench:" + Token, $"oci:{layout}:web", $"docker://127.0.0.1:{apiPort}/bench/p/web:1"));
    var join = await (await http.PostAsJsonAsync("api/v1/nodes/join-tokens", new { })).Content.ReadFromJsonAsync<JsonElement>();
    var agentDir = Path.Combine(work, "agent");
    var agent = Start(Path.Combine(repo, "src/NodeAgent/bin/Release/net10.0/Platform.NodeAgent.dll"), new()
    {
        ["Agent__ApiUrl"] = api.ToString(), ["Agent__JoinToken"] = join.GetProperty("token").GetString()!, ["Agent__NodeName"] = "bench",
        ["Agent__DataDir"] = agentDir, ["Agent__BridgePrefix"] = "pbn", ["Agent__PortRangeStart"] = "42000", ["Agent__PortRangeSize"] = "2000",
        ["Agent__StopGraceSeconds"] = "1", ["Agent__SubnetBase"] = "130", ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "agent.log"));
    processes.Add(agent);
    await Until(async () => (await http.GetFromJsonAsync<JsonElement>("api/v1/nodes")).GetProperty("items").EnumerateArray()
        .Any(n => n.GetProperty("state").GetString() == "Ready"), 60, "the node");
    const string App = "api/v1/teams/bench/projects/p/apps/web";
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects/p/apps", new { name = "web", image = "bench/p/web:1", instances = 1, memoryMiB = 32, cpuMillicores = 50, port = 8080 })).EnsureSuccessStatusCode();
    await Until(async () => await Routed(), 120, "the first instance (image pull)");   // warms the image cache

    // A bundle for the raw runs: the agent's own config.json and overlay root of a running instance, copied.
    var instanceDir = Directory.GetDirectories(Path.Combine(agentDir, "instances")).First();
    var raw = Path.Combine(work, "raw");
    Directory.CreateDirectory(raw);
    await Check(Tool("cp", "-a", Path.Combine(instanceDir, "rootfs"), Path.Combine(raw, "rootfs")));
    File.SetUnixFileMode(raw, (UnixFileMode)0b111_001_001);
    var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(instanceDir, "config.json")))!.AsObject();
    config["root"]!["path"] = Path.Combine(raw, "rootfs");

    await Scale(0);
    var platform = new List<double>();
    var unrouted = new List<double>();
    var direct = new List<double>();
    var rawRuntime = new RawRuntime(work, "pbr0", "10.99.0.0/24");
    for (var round = 0; round < rounds; round++)
    {
        // The platform: the app goes 0 → 1; the clock runs until the router serves it.
        var clock = Stopwatch.StartNew();
        await Scale(1);
        await Until(async () => await Routed(), 60, "the platform instance");
        platform.Add(clock.Elapsed.TotalMilliseconds);
        clock.Restart();
        await Scale(0);
        await Until(async () => !await Routed(), 60, "the platform instance to stop");
        unrouted.Add(clock.Elapsed.TotalMilliseconds);

        // Raw: netns + CNI ADD by hand + runc run -d of the same bundle, until the host port serves.
        var id = "raw" + round;
        var port = FreePort();
        clock.Restart();
        await rawRuntime.NetworkUpAsync(id, port, 8080);
        config["linux"]!["namespaces"] = new JsonArray(new[] { "pid", "ipc", "uts", "mount", "cgroup", "user" }
            .Select(t => (JsonNode)new JsonObject { ["type"] = t }).Append(new JsonObject { ["type"] = "network", ["path"] = RawRuntime.NamespacePath(id) }).ToArray());
        config["linux"]!["cgroupsPath"] = "runtime-bench/" + id;
        await File.WriteAllTextAsync(Path.Combine(raw, "config.json"), config.ToJsonString());
        await rawRuntime.RunAsync(id, raw);
        await Until(async () => (await Try(() => probe.GetAsync($"http://127.0.0.1:{port}/")))?.IsSuccessStatusCode == true, 60, "the raw container");
        direct.Add(clock.Elapsed.TotalMilliseconds);
        await rawRuntime.RemoveAsync(id, port, 8080);
        Console.Error.WriteLine($"    round {round + 1}: platform {platform[^1]:F0} ms (route gone {unrouted[^1]:F0} ms after scale 0), raw {direct[^1]:F0} ms");
    }

    await rawRuntime.RemoveBridgeAsync();

    // A CPU-bound instance limited to 250 millicores: the share of one CPU it gets over 5 s, from its
    // cgroup's CPU time, and the CFS periods in which the kernel throttled it (cpu.stat nr_throttled).
    await Check(Tool("umoci", "config", "--image", $"{layout}:{baseTag}", "--tag", "spin", "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", "while :; do :; done"));
    await Check(Tool("skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bench:" + Token, $"oci:{layout}:spin", $"docker://127.0.0.1:{apiPort}/bench/p/spin:1"));
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects/p/apps", new { name = "spin", image = "bench/p/spin:1", instances = 1, memoryMiB = 16, cpuMillicores = 250, port = 8080 })).EnsureSuccessStatusCode();
    string? spinCgroup = null;
    await Until(() =>
    {
        spinCgroup = Directory.GetDirectories(Path.Combine(agentDir, "instances")).Select(d => Path.Combine(d, "config.json")).Where(File.Exists)
            .Select(f => JsonNode.Parse(File.ReadAllText(f))!["linux"]!["cgroupsPath"]!.GetValue<string>())
            .FirstOrDefault(c => Cgroups.Usage(c) is not null);
        return Task.FromResult(spinCgroup is not null);
    }, 120, "the spinning instance", TimeSpan.FromMilliseconds(100));
    await Task.Delay(1000);
    var cpuStat = Path.Combine(Cgroups.IsV2 ? Cgroups.PathOf("", spinCgroup!) : Cgroups.PathOf("cpu", spinCgroup!), "cpu.stat");
    long Throttled() => long.Parse(File.ReadLines(cpuStat).First(l => l.StartsWith("nr_throttled ", StringComparison.Ordinal))[13..]);
    var (cpuBefore, throttledBefore, cpuClock) = (Cgroups.Usage(spinCgroup!)!.Value.CpuNanos, Throttled(), Stopwatch.StartNew());
    await Task.Delay(5000);
    var spinShare = (Cgroups.Usage(spinCgroup!)!.Value.CpuNanos - cpuBefore) / (cpuClock.Elapsed.TotalMilliseconds * 1e6) * 1000;
    var spinThrottled = Throttled() - throttledBefore;
    (await http.DeleteAsync("api/v1/teams/bench/projects/p/apps/spin")).EnsureSuccessStatusCode();
    await Until(() => Task.FromResult(Directory.GetDirectories(Path.Combine(agentDir, "instances")).Length == 0), 60, "the spinning instance to stop", TimeSpan.FromMilliseconds(100));

    var idle = Rss(agent.Id);

    // 100 instances on one node.
    // A quarter core each would not fit 100 on 2 cores: the scheduler places by the limits asked.
    var manyClock = Stopwatch.StartNew();
    (await http.PatchAsJsonAsync(App, new { instances = many, memoryMiB = 16, cpuMillicores = 15 })).EnsureSuccessStatusCode();
    await Until(async () =>
    {
        var ports = Directory.GetDirectories(Path.Combine(agentDir, "instances"))
            .Select(d => Path.Combine(d, "instance.json")).Where(File.Exists)
            .Select(f => JsonDocument.Parse(File.ReadAllText(f)).RootElement.GetProperty("HostPort").GetInt32()).Where(p => p > 0).ToList();
        if (ports.Count < many) return false;
        var answers = await Task.WhenAll(ports.Select(async p => (await Try(() => probe.GetAsync($"http://127.0.0.1:{p}/")))?.IsSuccessStatusCode == true));
        return answers.All(a => a);
    }, 300, $"{many} instances serving", TimeSpan.FromMilliseconds(100));
    var manySeconds = manyClock.Elapsed.TotalSeconds;
    var busy = Rss(agent.Id);
    var (rss, peak) = (busy.Rss, busy.Peak);
    await Scale(0);
    await Until(() => Task.FromResult(Directory.GetDirectories(Path.Combine(agentDir, "instances")).Length == 0), 300, "teardown");

    Console.WriteLine($"| Instance start, image cached ({rounds} rounds, median) | platform (scale 0→1 → first 200 via router) | raw runc run + CNI ADD → first 200 | ratio | goal |");
    Console.WriteLine("|---|---|---|---|---|");
    Console.WriteLine($"| | {Median(platform):F0} ms | {Median(direct):F0} ms | {Median(platform) / Median(direct):F2}× | ≤ 1.5× |");
    Console.WriteLine();
    Console.WriteLine($"| Instance stop ({rounds} rounds, median) | scale 1→0 → router no longer serves it |");
    Console.WriteLine("|---|---|");
    Console.WriteLine($"| | {Median(unrouted):F0} ms |");
    Console.WriteLine();
    Console.WriteLine("| CPU-bound instance of 250 m, 5 s | CPU used | throttled periods (of 50) |");
    Console.WriteLine("|---|---|---|");
    Console.WriteLine($"| | {spinShare:F0} m ({(spinShare / 250 - 1) * 100:+0;-0} %) | {spinThrottled} |");
    Console.WriteLine();
    Console.WriteLine($"| {many} instances on one node | time until all serve | agent RSS (now / peak) | goal |");
    Console.WriteLine("|---|---|---|---|");
    Console.WriteLine($"| | {manySeconds:F1} s | {rss:F0} / {peak:F0} MiB | ≤ 20 s, ≤ 80 MiB |");
    Console.WriteLine();
    Console.WriteLine($"agent RSS with 0 instances: {idle.Rss:F0} MiB (anonymous {idle.Anon:F0}, files {idle.Files:F0}); with {many}: {busy.Rss:F0} MiB (anonymous {busy.Anon:F0}, files {busy.Files:F0})");
    Console.WriteLine($"platform runs (ms): {string.Join(", ", platform.Select(v => v.ToString("F0")))}");
    Console.WriteLine($"raw runs (ms): {string.Join(", ", direct.Select(v => v.ToString("F0")))}");
    Console.WriteLine($"route gone after scale 0 (ms): {string.Join(", ", unrouted.Select(v => v.ToString("F0")))}");

    async Task Scale(int n) => (await http.PatchAsJsonAsync(App, new { instances = n })).EnsureSuccessStatusCode();

    async Task<bool> Routed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, router);
        request.Headers.Host = "web-p-bench.apps.localhost";
        using var response = await Try(() => probe.SendAsync(request));
        return response?.StatusCode == HttpStatusCode.OK;
    }
}
finally
{
    foreach (var p in processes.Where(p => !p.HasExited)) { p.Kill(entireProcessTree: true); p.WaitForExit(); }
    Console.Error.WriteLine($"==> logs kept in {work} (api.log, agent.log); remove it with rm -rf when done");
}

static (double Rss, double Peak, double Anon, double Files) Rss(int pid)
{
    var status = File.ReadAllLines($"/proc/{pid}/status");
    double Kib(string key) => long.Parse(status.First(l => l.StartsWith(key)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    return (Kib("VmRSS:"), Kib("VmHWM:"), Kib("RssAnon:"), Kib("RssFile:") + Kib("RssShmem:"));
}
