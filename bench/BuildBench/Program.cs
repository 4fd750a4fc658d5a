using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Platform.Host.Processes;
using static BenchKit;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Build benchmark (issue 6), as root on one machine, with the real Api and NodeAgent processes:
//  1. `git push` of a one-file change → the new content served through the router, against the same
//     steps by hand in the same run (buildah bud with its own layer cache, buildah push to the same
//     registry, then buildah push to an OCI layout + umoci unpack + runc run, until the new content
//     answers), alternating, N rounds each; medians and their ratio (goal ≤ 3×);
//  2. build time of a cold build (a new app: base pulled, every step run) against a one-file change
//     rebuilt from that app's cache (goal ≤ 0.5×), N each, from the builds' own start and end times.
// Usage: dotnet run -c Release --project bench/BuildBench -- <repo root> [rounds]
var repo = Path.GetFullPath(args.ElementAtOrDefault(0) ?? ".");
var rounds = int.Parse(args.ElementAtOrDefault(1) ?? "5");
var work = Path.Combine("/var/tmp", "build-bench-" + Guid.NewGuid().ToString("N")[..6]);
Directory.CreateDirectory(work);
const string Token = "plat_build_bench_token_0123456789abcdefgh";
// Some real work before the COPY of the changing file: what the cache saves.
const string Dockerfile = """
    FROM busybox
    RUN mkdir -p /www /opt/deps && dd if=/dev/urandom of=/opt/deps/blob bs=1M count=48 2>/dev/null && sha256sum /opt/deps/blob > /opt/deps/sum
    RUN i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo compiled > /opt/deps/compiled
    WORKDIR /www
    COPY index.html /www/index.html
    EXPOSE 8080
    CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
    """;
var processes = new List<Process>();
var apiPort = FreePort();
var routerPort = FreePort();
var api = new Uri($"http://127.0.0.1:{apiPort}/");
var registry = $"127.0.0.1:{apiPort}";
var http = new HttpClient { BaseAddress = api, Timeout = TimeSpan.FromSeconds(60) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
var probe = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero, ConnectTimeout = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(2) };
var gitEnv = new Dictionary<string, string> { ["HOME"] = work, ["GIT_AUTHOR_NAME"] = "bench", ["GIT_AUTHOR_EMAIL"] = "bench@local", ["GIT_COMMITTER_NAME"] = "bench", ["GIT_COMMITTER_EMAIL"] = "bench@local" };
const string Apps = "api/v1/teams/bench/projects/p/apps";

try
{
    Console.Error.WriteLine($"==> Api on {api}, router on 127.0.0.1:{routerPort}, scratch {work}");
    processes.Add(Start(Path.Combine(repo, "src/Api/bin/Release/net10.0/Platform.Api.dll"), new()
    {
        ["Platform__DataDir"] = Path.Combine(work, "api"), ["Platform__Bootstrap__AdminEmail"] = "admin@bench.local",
        ["Platform__Bootstrap__AdminPassword"] = "bench-password-1", ["Platform__Bootstrap__AdminToken"] = Token,
        ["Platform__Ingress__Url"] = $"http://127.0.0.1:{routerPort}", ["Platform__Nodes__HeartbeatSeconds"] = "2", ["ASPNETCORE_URLS"] = api.ToString(),
        ["Platform__Builds__Bridge"] = "pbbench0", ["Platform__Builds__Subnet"] = "10.255.252.0/24", ["Platform__Builds__CgroupName"] = "platform-builds-bench",
        ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "api.log")));
    await Until(async () => (await Try(() => http.GetAsync("healthz")))?.IsSuccessStatusCode == true, 60, "the Api");
    await Check(Tool(Path.Combine(repo, "scripts/make-base-image.sh"), registry, Token, Path.Combine(work, "layout")));
    (await http.PostAsJsonAsync("api/v1/teams", new { name = "bench" })).EnsureSuccessStatusCode();
    (await http.PutAsJsonAsync("api/v1/teams/bench/quota", new { memoryMiB = 100_000, cpuMillicores = 100_000, instances = 100, apps = 20, projects = 2, registryGiB = 5, concurrentBuilds = 2 })).EnsureSuccessStatusCode();
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects", new { name = "p" })).EnsureSuccessStatusCode();
    var join = await (await http.PostAsJsonAsync("api/v1/nodes/join-tokens", new { })).Content.ReadFromJsonAsync<JsonElement>();
    processes.Add(Start(Path.Combine(repo, "src/NodeAgent/bin/Release/net10.0/Platform.NodeAgent.dll"), new()
    {
        ["Agent__ApiUrl"] = api.ToString(), ["Agent__JoinToken"] = join.GetProperty("token").GetString()!, ["Agent__NodeName"] = "bench",
        ["Agent__DataDir"] = Path.Combine(work, "agent"), ["Agent__BridgePrefix"] = "pbb", ["Agent__PortRangeStart"] = "44000", ["Agent__PortRangeSize"] = "500",
        ["Agent__StopGraceSeconds"] = "1", ["Agent__SubnetBase"] = "131", ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "agent.log")));
    await Until(async () => (await http.GetFromJsonAsync<JsonElement>("api/v1/nodes")).GetProperty("items").EnumerateArray()
        .Any(n => n.GetProperty("state").GetString() == "Ready"), 60, "the node Ready");

    // The platform's app and its working copy; the first push (cold) is not timed.
    (await http.PostAsJsonAsync(Apps, new { name = "site", instances = 1, memoryMiB = 64, cpuMillicores = 500, port = 8080 })).EnsureSuccessStatusCode();
    var site = Path.Combine(work, "site");
    var remote = $"http://bench:{Token}@{registry}/git/bench/p/site.git";
    await Commit(site, "warm-up", init: true);
    await Check(Git(site, "push", "-q", remote, "main"));
    await Served("warm-up", 300);

    // The same by hand: its own buildah storage (cache), the same registry, runc on the host network.
    var hand = Path.Combine(work, "hand");
    var env = BuildahEnv(Path.Combine(work, "hand-buildah"));
    await Commit(hand, "warm-up", init: true, from: $"{registry}/library/busybox");
    var handPort = FreePort();
    await ByHand("warm-up", 0);

    var platform = new List<double>();
    var direct = new List<double>();
    for (var r = 1; r <= rounds; r++)
    {
        var content = $"round {r} platform";
        await Commit(site, content);
        var sw = Stopwatch.StartNew();
        // -o no-follow: the push returns once the build is queued, and the clock stops when the router serves the content.
        await Check(Git(site, "push", "-q", "-o", "no-follow", remote, "main"));
        await Served(content, 300);
        platform.Add(sw.Elapsed.TotalMilliseconds);

        content = $"round {r} by hand";
        await Commit(hand, content);
        direct.Add(await ByHand(content, r));
        Console.Error.WriteLine($"round {r}: platform {platform[^1]:F0} ms, by hand {direct[^1]:F0} ms");
    }

    // Cold builds (new apps) against cached one-file rebuilds, from the builds' own times.
    var cold = new List<double>();
    var cached = new List<double>();
    for (var r = 1; r <= rounds; r++)
    {
        var name = $"cold{r}";
        (await http.PostAsJsonAsync(Apps, new { name, instances = 0 })).EnsureSuccessStatusCode();
        var dir = Path.Combine(work, name);
        await Commit(dir, "cold", init: true);
        await Check(Git(dir, "push", "-q", $"http://bench:{Token}@{registry}/git/bench/p/{name}.git", "main"));
        cold.Add(await BuildSeconds(name, 1));
        await Commit(dir, "cached");
        await Check(Git(dir, "push", "-q", $"http://bench:{Token}@{registry}/git/bench/p/{name}.git", "main"));
        cached.Add(await BuildSeconds(name, 2));
        Console.Error.WriteLine($"{name}: cold {cold[^1]:F2} s, cached {cached[^1]:F2} s");
        (await http.DeleteAsync($"{Apps}/{name}")).EnsureSuccessStatusCode();
    }

    Console.WriteLine($"| measurement | platform | by hand | ratio | goal |");
    Console.WriteLine($"| --- | --- | --- | --- | --- |");
    Console.WriteLine($"| git push → new content served, median of {rounds} | {Median(platform):F0} ms | {Median(direct):F0} ms | {Median(platform) / Median(direct):F2}× | ≤ 3× |");
    Console.WriteLine($"| build: one-file change from cache vs cold, median of {rounds} | {Median(cached):F2} s | {Median(cold):F2} s (cold) | {Median(cached) / Median(cold):F2}× | ≤ 0.5× |");
    Console.WriteLine($"platform runs (ms): {string.Join(", ", platform.Select(x => x.ToString("F0")))}; by hand: {string.Join(", ", direct.Select(x => x.ToString("F0")))}");
    Console.WriteLine($"cold (s): {string.Join(", ", cold.Select(x => x.ToString("F2")))}; cached: {string.Join(", ", cached.Select(x => x.ToString("F2")))}");

    // By hand: buildah bud (cached) + push to the registry, then the image unpacked and run with runc on the host network.
    async Task<double> ByHand(string content, int round)
    {
        var sw = Stopwatch.StartNew();
        var image = $"{registry}/bench/p/hand:{round}";
        await Check(Tool("env", [.. env.Select(e => $"{e.Key}={e.Value}"), "buildah", "bud", "-q", "--layers", "--isolation", "oci", "--runtime", "/usr/sbin/runc",
            "--network", "none", "--tls-verify=false", "--creds", "bench:" + Token, "-t", image, hand]));
        await Check(Tool("env", [.. env.Select(e => $"{e.Key}={e.Value}"), "buildah", "push", "-q", "--tls-verify=false", "--creds", "bench:" + Token, image, "docker://" + image]));
        var layout = Path.Combine(work, "hand-layout");
        await Check(Tool("env", [.. env.Select(e => $"{e.Key}={e.Value}"), "buildah", "push", "-q", image, $"oci:{layout}:{round}"]));
        var bundle = Path.Combine(work, $"hand-bundle-{round}");
        await Check(Tool("umoci", "unpack", "--image", $"{layout}:{round}", bundle));
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(bundle, "config.json")))!;
        var namespaces = config["linux"]!["namespaces"]!.AsArray();
        foreach (var n in namespaces.Where(n => n!["type"]!.GetValue<string>() == "network").ToList()) namespaces.Remove(n);
        config["process"]!["args"] = new JsonArray("httpd", "-f", "-p", handPort.ToString(), "-h", "/www");
        config["process"]!["terminal"] = false;
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), config.ToJsonString());
        await Tool("runc", "delete", "-f", "hand-bench");
        // Detached, with no pipe of ours held open by the container.
        await Check(Tool("sh", "-c", $"exec runc run -d --bundle {bundle} hand-bench </dev/null >/dev/null 2>&1"));
        await Until(async () => (await Try(() => probe.GetStringAsync($"http://127.0.0.1:{handPort}/"))) == content + "\n", 60, "the hand-run container", TimeSpan.FromMilliseconds(20));
        var elapsed = sw.Elapsed.TotalMilliseconds;
        await Tool("runc", "delete", "-f", "hand-bench");
        return elapsed;
    }
}
finally
{
    await Tool("runc", "delete", "-f", "hand-bench");
    // The app goes first, so the agent stops its container before it is stopped itself.
    if ((await Try(() => http.DeleteAsync($"{Apps}/site")))?.IsSuccessStatusCode == true)
        try
        {
            await Until(async () => !Directory.Exists(Path.Combine(work, "agent", "instances")) || !Directory.EnumerateDirectories(Path.Combine(work, "agent", "instances")).Any(),
                30, "the agent to stop the app", TimeSpan.FromMilliseconds(200));
        }
        catch (TimeoutException e)
        {
            Console.Error.WriteLine(e.Message);
        }
    foreach (var p in processes) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
    Console.Error.WriteLine($"==> logs kept in {work} (api.log, agent.log); remove it with rm -rf when done");
}

async Task Commit(string dir, string content, bool init = false, string? from = null)
{
    if (init)
    {
        Directory.CreateDirectory(dir);
        await Check(Git(dir, "init", "-q", "-b", "main"));
        await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), from is null ? Dockerfile : Dockerfile.Replace("FROM busybox", "FROM " + from));
    }
    await File.WriteAllTextAsync(Path.Combine(dir, "index.html"), content + "\n");
    await Check(Git(dir, "add", "."));
    await Check(Git(dir, "commit", "-q", "-m", content));
}

Task<ProcessResult> Git(string dir, params string[] a) =>
    Tool("env", [.. gitEnv.Select(e => $"{e.Key}={e.Value}"), "git", "-C", dir, .. a]);

async Task Served(string content, int seconds) =>
    await Until(async () =>
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{routerPort}/");
        request.Headers.Host = "site-p-bench.apps.localhost";
        using var response = await Try(() => probe.SendAsync(request));
        return response is { IsSuccessStatusCode: true } && await response.Content.ReadAsStringAsync() == content + "\n";
    }, seconds, $"'{content}' through the router", TimeSpan.FromMilliseconds(20));

async Task<double> BuildSeconds(string app, int number)
{
    JsonElement b = default;
    await Until(async () => (b = await http.GetFromJsonAsync<JsonElement>($"{Apps}/{app}/builds/{number}")).GetProperty("state").GetString() is "Succeeded" or "Failed",
        300, $"build {number} of {app}", TimeSpan.FromMilliseconds(200));
    if (b.GetProperty("state").GetString() != "Succeeded") throw new InvalidOperationException($"build {number} of {app} failed: {b}");
    return (b.GetProperty("finishedAt").GetDateTime() - b.GetProperty("startedAt").GetDateTime()).TotalSeconds;
}

static Dictionary<string, string> BuildahEnv(string root)
{
    Directory.CreateDirectory(root);
    File.WriteAllText(Path.Combine(root, "storage.conf"), $"[storage]\ndriver = \"overlay\"\ngraphroot = \"{root}/storage\"\nrunroot = \"{root}/run\"\n");
    File.WriteAllText(Path.Combine(root, "containers.conf"), "[engine]\nruntime = \"runc\"\n");
    return new() { ["CONTAINERS_STORAGE_CONF"] = Path.Combine(root, "storage.conf"), ["CONTAINERS_CONF"] = Path.Combine(root, "containers.conf") };
}
