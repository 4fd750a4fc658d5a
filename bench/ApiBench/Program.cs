// Load benchmark of the control plane API (issues 2 and 16): p50/p99 of listing and creating apps with 10,000 apps
// and 50 concurrent clients, on SQLite, on PostgreSQL, and on PostgreSQL with one and with two Api replicas behind
// haproxy (a shared data folder, as docs/operations.md says). Starts Platform.Api as separate processes per
// setup, seeds it over HTTP, runs closed-loop clients for a fixed time per scenario and prints markdown.
//
//   dotnet ApiBench.dll --api src/Api/bin/Release/net10.0/Platform.Api.dll --work /tmp/x
//                       [--postgres "Host=127.0.0.1;Port=5432;Username=postgres;Database=bench"] [--pg-pid <postmaster pid>]
//                       [--providers sqlite,postgres,postgres-lb1,postgres-lb2] [--apps 10000] [--seeders 16] [--clients 50]
//                       [--warmup 3] [--duration 20] [--baseline 5]
//
// postgres-lbN: N replicas behind haproxy, each setup on a database of its own (Database=bench_lbN, which must exist).
// Creates also run spread over 10 teams (each team's quota admission serialises its own creates).
//
// bench/run-api-bench.sh builds everything, starts a throwaway PostgreSQL and runs this.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

const string Token = "plat_bench_token_0123456789abcdefghijklmn";
const string AppsPath = "/api/v1/teams/bench/projects/p/apps";

var opt = args.Select((a, i) => (a, i)).Where(x => x.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(x => x.a[2..], x => x.i + 1 < args.Length ? args[x.i + 1] : "");
string Opt(string name, string? fallback = null) =>
    opt.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"--{name} is required");
int Int(string name, int fallback) => int.Parse(Opt(name, fallback.ToString()));

var apiDll = Path.GetFullPath(Opt("api"));
var work = Path.GetFullPath(Opt("work"));
var postgres = opt.GetValueOrDefault("postgres");
var pgPid = int.Parse(Opt("pg-pid", "0")); // the postmaster, to count PostgreSQL's CPU apart from the rest of the machine
var providers = Opt("providers", postgres is null ? "sqlite" : "sqlite,postgres,postgres-lb1,postgres-lb2").Split(',');
int apps = Int("apps", 10_000), seeders = Int("seeders", 16), clients = Int("clients", 50);
int warmup = Int("warmup", 3), duration = Int("duration", 20), baseline = Int("baseline", 5);
var middleCursor = $"app-{apps / 2:D5}"; // app-05000 with 10,000 apps

var rows = new List<Row>();
var summaries = new List<string>();
foreach (var provider in providers)
    await RunProviderAsync(provider);

Console.WriteLine();
Console.WriteLine($"### Latency ({apps:N0} seeded apps, {clients} closed-loop clients, {warmup} s warm-up + {duration} s per scenario)");
Console.WriteLine();
Console.WriteLine("| Provider | Scenario | Requests | Errors | req/s | p50 ms | p90 ms | p99 ms | max ms | Api CPU ms/req | CPU cores: Api / PostgreSQL / client / other |");
Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
foreach (var r in rows)
    Console.WriteLine($"| {r.Provider} | {r.Scenario} | {r.Count:N0} | {r.Errors} | {r.Count / r.Seconds:N0} | {r.P(0.50):F1} | " +
                      $"{r.P(0.90):F1} | {r.P(0.99):F1} | {r.P(1):F1} | {(double.IsNaN(r.ApiCores) ? "" : (r.ApiCores * 1000 * r.Seconds / r.Count).ToString("F2"))} | {Cores(r)} |");
Console.WriteLine();
Console.WriteLine("CPU cores = CPU seconds used during the measured window / its length: the Api process, PostgreSQL (postmaster and " +
                  "backends), this benchmark client, and everything else on the machine; Api CPU ms/req = Api CPU time / requests. \"↳ of which\" rows split the mixed load by operation " +
                  "(their req/s is that operation's share).");
Console.WriteLine();
Console.WriteLine("| Provider | Seeding | Apps at end | List page body | Api peak RSS (VmHWM) | Api log lines ≥ Warning |");
Console.WriteLine("|---|---|---:|---:|---:|---:|");
foreach (var s in summaries) Console.WriteLine(s);
return rows.Any(r => r.Errors > 0) ? 1 : 0;

async Task RunProviderAsync(string provider)
{
    var dataDir = Path.Combine(work, "api-" + provider);
    if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true);
    Directory.CreateDirectory(dataDir);
    var (replicas, balanced, connection) = provider switch
    {
        "sqlite" => (1, false, null),
        "postgres" => (1, false, postgres ?? throw new ArgumentException("--postgres is required")),
        "postgres-lb1" or "postgres-lb2" => (provider[^1] - '0', true,
            (postgres ?? throw new ArgumentException("--postgres is required")).Replace("Database=bench", "Database=bench_lb" + provider[^1])),
        _ => throw new ArgumentException($"unknown provider '{provider}'"),
    };
    var logPath = Path.Combine(work, $"api-{provider}.log");
    using var log = new StreamWriter(logPath) { AutoFlush = true };
    var logLines = 0;
    DataReceivedEventHandler onLine = (_, e) => { if (e.Data is { } l) lock (log) { log.WriteLine(l); logLines++; } };
    var ports = Enumerable.Range(0, replicas).Select(_ => FreePort()).ToList();
    var lbPort = balanced ? FreePort() : 0;
    var processes = new List<Process>();
    Process? haproxy = null;
    Process StartApi(int i)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(apiDll)!, // content root: appsettings.json lives next to the dll
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { apiDll, "--urls", $"http://127.0.0.1:{ports[i]}" }) psi.ArgumentList.Add(a);
        psi.Environment["Platform__DataDir"] = dataDir;   // one shared folder for every replica
        psi.Environment["Platform__ReplicaName"] = $"bench-{i + 1}";
        psi.Environment["Platform__Ingress__Url"] = "http://127.0.0.1:0";
        psi.Environment["Platform__Bootstrap__AdminEmail"] = "admin@bench.test";
        psi.Environment["Platform__Bootstrap__AdminPassword"] = "bench-password-1";
        psi.Environment["Platform__Bootstrap__AdminToken"] = Token;
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        if (balanced) psi.Environment["Platform__PublicUrl"] = $"http://127.0.0.1:{lbPort}";
        if (connection is not null)
        {
            psi.Environment["Platform__Database__Provider"] = "Postgres";
            psi.Environment["ConnectionStrings__Platform"] = connection;
        }
        var p = Process.Start(psi)!;
        p.OutputDataReceived += onLine;
        p.ErrorDataReceived += onLine;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        File.WriteAllText(Path.Combine(work, $"api-{provider}-{i}.pid"), p.Id.ToString()); // for the script's cleanup trap
        return p;
    }
    using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, MaxConnectionsPerServer = 256 })
    {
        BaseAddress = new Uri($"http://127.0.0.1:{(balanced ? lbPort : ports[0])}"), Timeout = TimeSpan.FromSeconds(60),
    };
    http.DefaultRequestHeaders.Authorization = new("Bearer", Token);
    var errorNotes = new List<string>();
    long created = 0;
    try
    {
        var ready = Stopwatch.StartNew();
        // One replica at a time: the first applies the migrations and makes the admin.
        for (var i = 0; i < replicas; i++)
        {
            processes.Add(StartApi(i));
            using var direct = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[i]}") };
            while (!await ReadyAsync(direct))
            {
                if (processes[i].HasExited || ready.Elapsed > TimeSpan.FromMinutes(2))
                    throw new InvalidOperationException($"Api ({provider}, replica {i + 1}) not ready (exited: {processes[i].HasExited}); see {logPath}");
                await Task.Delay(200);
            }
        }
        if (balanced)
        {
            var config = Path.Combine(work, $"haproxy-{provider}.cfg");
            File.WriteAllText(config, string.Join('\n', [
                "global", "  maxconn 4000", "defaults", "  mode http", "  timeout connect 2s", "  timeout client 60s", "  timeout server 60s",
                "frontend api", $"  bind 127.0.0.1:{lbPort}", "  default_backend apis", "backend apis", "  balance roundrobin",
                "  option httpchk GET /readyz", "  http-reuse always",
                .. ports.Select((p, i) => $"  server r{i + 1} 127.0.0.1:{p} check inter 1s"), ""]));
            haproxy = Process.Start(new ProcessStartInfo("haproxy", ["-db", "-f", config]) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true })!;
            haproxy.OutputDataReceived += onLine;
            haproxy.ErrorDataReceived += onLine;
            haproxy.BeginOutputReadLine();
            haproxy.BeginErrorReadLine();
            File.WriteAllText(Path.Combine(work, $"haproxy-{provider}.pid"), haproxy.Id.ToString());
            while (!await ReadyAsync(http))
            {
                if (haproxy.HasExited || ready.Elapsed > TimeSpan.FromMinutes(2))
                    throw new InvalidOperationException($"haproxy ({provider}) not ready (exited: {haproxy.HasExited}); see {logPath}");
                await Task.Delay(200);
            }
        }
        Progress($"{provider}: {replicas} Api replica(s) (pids {string.Join(", ", processes.Select(p => p.Id))}) ready{(balanced ? $" behind haproxy on port {lbPort}" : "")} after {ready.Elapsed.TotalSeconds:F1} s");

        await ExpectAsync(http, HttpMethod.Post, "/api/v1/teams", new { name = "bench" }, HttpStatusCode.Created);
        await ExpectAsync(http, HttpMethod.Put, "/api/v1/teams/bench/quota", new
        {
            memoryMiB = 100_000_000, cpuMillicores = 100_000_000, instances = 100_000_000, apps = 100_000_000,
            projects = 1000, registryGiB = 10, concurrentBuilds = 2,
        }, HttpStatusCode.OK);
        await ExpectAsync(http, HttpMethod.Post, "/api/v1/teams/bench/projects", new { name = "p" }, HttpStatusCode.Created);
        // Ten more teams, for creates spread over teams (each team's admission serialises only its own creates).
        for (var t = 0; t < 10; t++)
        {
            await ExpectAsync(http, HttpMethod.Post, "/api/v1/teams", new { name = $"spread{t}" }, HttpStatusCode.Created);
            await ExpectAsync(http, HttpMethod.Put, $"/api/v1/teams/spread{t}/quota", new
            {
                memoryMiB = 100_000_000, cpuMillicores = 100_000_000, instances = 100_000_000, apps = 100_000_000,
                projects = 1000, registryGiB = 10, concurrentBuilds = 2,
            }, HttpStatusCode.OK);
            await ExpectAsync(http, HttpMethod.Post, $"/api/v1/teams/spread{t}/projects", new { name = "p" }, HttpStatusCode.Created);
        }

        // Seeding: app-00001 … app-10000 by `seeders` clients; every one must succeed.
        var seedNext = 0;
        var seed = await MeasuredAsync(() => LoadAsync(seeders, stopAt: null, _ => Interlocked.Increment(ref seedNext) is var n && n <= apps
            ? Create($"app-{n:D5}") : null));
        if (seed.Errors > 0) throw new InvalidOperationException($"seeding failed: {string.Join("; ", errorNotes)}");
        rows.Add(seed with { Provider = provider, Scenario = $"seed {apps:N0} apps ({seeders} clients)" });
        Progress($"{provider}: seeded {apps:N0} apps in {seed.Seconds:F1} s");

        // Sanity: the first page holds app-00001 … app-00100 and the middle page starts at app-05001.
        var first = await http.GetStringAsync(AppsPath + "?limit=100");
        var middle = await http.GetStringAsync(AppsPath + "?limit=100&after=" + middleCursor);
        CheckPage(first, "app-00001", "app-00100");
        CheckPage(middle, $"app-{apps / 2 + 1:D5}", $"app-{apps / 2 + 100:D5}");

        Func<Request?> listFirst = () => new(Op.ListFirst, HttpMethod.Get, AppsPath + "?limit=100", null);
        Func<Request?> listMiddle = () => new(Op.ListMiddle, HttpMethod.Get, AppsPath + "?limit=100&after=" + middleCursor, null);
        Func<Request?> create = () => Create($"new-{Interlocked.Increment(ref created):D6}");
        if (baseline > 0)
        {
            await ScenarioAsync("list first page, 1 client (baseline)", 1, baseline, _ => listFirst());
            await ScenarioAsync("create, 1 client (baseline)", 1, baseline, _ => create());
        }
        await ScenarioAsync("list first page", clients, duration, _ => listFirst());
        await ScenarioAsync($"list middle page (after={middleCursor})", clients, duration, _ => listMiddle());
        await ScenarioAsync("create app", clients, duration, _ => create());
        long spread = 0;
        await ScenarioAsync("create app, 10 teams", clients, duration, _ =>
        {
            var n = Interlocked.Increment(ref spread);
            return Create($"spread-{n:D6}", $"/api/v1/teams/spread{n % 10}/projects/p/apps");
        });
        await ScenarioAsync("mixed 90% list / 10% create", clients, duration,
            rnd => rnd.NextDouble() < 0.1 ? create() : listFirst());

        var hwm = processes.Sum(p => long.Parse(File.ReadAllLines($"/proc/{p.Id}/status")
            .First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]));
        var appsAtEnd = apps + Interlocked.Read(ref created);
        summaries.Add($"| {provider} | {apps:N0} apps in {seed.Seconds:F1} s ({seed.Count / seed.Seconds:N0}/s) | " +
                      $"~{appsAtEnd:N0} | {Encoding.UTF8.GetByteCount(first) / 1024.0:F1} KiB | {hwm / 1024.0:F0} MiB{(replicas > 1 ? $" ({replicas} replicas)" : "")} | {logLines} |");
        foreach (var note in errorNotes.Take(10)) Progress($"{provider}: error: {note}");
    }
    finally
    {
        foreach (var p in processes.Append(haproxy).OfType<Process>())
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    Request Create(string name, string path = AppsPath) => new(Op.Create, HttpMethod.Post, path,
        JsonSerializer.Serialize(new { name, instances = 1, memoryMiB = 64, cpuMillicores = 10, port = 8080 }));

    async Task ScenarioAsync(string name, int n, int seconds, Func<Random, Request?> next)
    {
        await LoadAsync(n, Stopwatch.GetTimestamp() + warmup * Stopwatch.Frequency, next);
        var r = await MeasuredAsync(() => LoadAsync(n, Stopwatch.GetTimestamp() + seconds * Stopwatch.Frequency, next));
        rows.Add(r with { Scenario = name });
        var ops = r.Samples.Select(s => s.Op).Distinct().Order().ToList();
        if (ops.Count > 1)
            foreach (var op in ops)
                rows.Add(Row.Of(provider, $"↳ of which {(op == Op.Create ? "create" : "list")}", r.Samples.Where(s => s.Op == op).ToList(), r.Seconds));
        Progress($"{provider}: {name}: {r.Count:N0} requests, {r.Count / r.Seconds:N0}/s, p50 {r.P(0.5):F1} ms, p99 {r.P(0.99):F1} ms, errors {r.Errors}");
    }

    // CPU used while `load` runs, in cores: the Api process, PostgreSQL, this client, and the rest of the machine.
    async Task<Row> MeasuredAsync(Func<Task<Row>> load)
    {
        double ApiCpu() => processes.Sum(p => ProcessCpuSeconds(p.Id));   // every replica
        var (api0, pg0, self0, machine0) = (ApiCpu(), PostgresCpuSeconds(), SelfCpuSeconds(), MachineBusySeconds());
        var r = await load();
        var apiCores = (ApiCpu() - api0) / r.Seconds;
        var pgCores = (PostgresCpuSeconds() - pg0) / r.Seconds;
        var selfCores = (SelfCpuSeconds() - self0) / r.Seconds;
        var otherCores = (MachineBusySeconds() - machine0) / r.Seconds - apiCores - pgCores - selfCores;
        return r with { ApiCores = apiCores, PgCores = pgCores, BenchCores = selfCores, OtherCores = Math.Max(0, otherCores) };
    }

    // Closed loop: each of n clients sends its next request as soon as the previous answer is read.
    async Task<Row> LoadAsync(int n, long? stopAt, Func<Random, Request?> next)
    {
        var start = Stopwatch.GetTimestamp();
        var perClient = await Task.WhenAll(Enumerable.Range(0, n).Select(c => Task.Run(async () =>
        {
            var rnd = new Random(c * 7919 + 17);
            var samples = new List<Sample>();
            while ((stopAt is null || Stopwatch.GetTimestamp() < stopAt) && next(rnd) is { } req)
            {
                var t0 = Stopwatch.GetTimestamp();
                var ok = await SendAsync(req);
                samples.Add(new Sample(req.Op, Stopwatch.GetElapsedTime(t0).TotalMilliseconds, ok));
            }
            return samples;
        })));
        return Row.Of(provider, "", perClient.SelectMany(s => s).ToList(), Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    async Task<bool> SendAsync(Request r)
    {
        try
        {
            using var msg = new HttpRequestMessage(r.Method, r.Path);
            if (r.Json is not null) msg.Content = new StringContent(r.Json, Encoding.UTF8, "application/json");
            using var resp = await http.SendAsync(msg); // buffers the whole body
            var expected = r.Op == Op.Create ? HttpStatusCode.Created : HttpStatusCode.OK;
            if (resp.StatusCode == expected) return true;
            var body = await resp.Content.ReadAsStringAsync();
            lock (errorNotes) errorNotes.Add($"{r.Method} {r.Path} {r.Json} -> {(int)resp.StatusCode}: {body[..Math.Min(body.Length, 600)]}");
        }
        catch (Exception e)
        {
            lock (errorNotes) errorNotes.Add($"{r.Method} {r.Path} {r.Json} -> {e.GetType().Name}: {e.Message}");
        }
        return false;
    }
}

static async Task<bool> ReadyAsync(HttpClient http)
{
    try { using var r = await http.GetAsync("/readyz"); return r.StatusCode == HttpStatusCode.OK; }
    catch (HttpRequestException) { return false; }
}

static async Task ExpectAsync(HttpClient http, HttpMethod method, string path, object body, HttpStatusCode expected)
{
    using var msg = new HttpRequestMessage(method, path) { Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
    using var resp = await http.SendAsync(msg);
    if (resp.StatusCode != expected)
        throw new InvalidOperationException($"{method} {path} -> {(int)resp.StatusCode}: {await resp.Content.ReadAsStringAsync()}");
}

static void CheckPage(string json, string firstName, string lastName)
{
    using var doc = JsonDocument.Parse(json);
    var items = doc.RootElement.GetProperty("items");
    var names = items.EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToList();
    var next = doc.RootElement.GetProperty("next").GetString();
    if (names.Count != 100 || names[0] != firstName || names[^1] != lastName || next != lastName)
        throw new InvalidOperationException($"unexpected page: {names.Count} items {names.FirstOrDefault()}…{names.LastOrDefault()}, next {next}");
}

static int FreePort()
{
    using var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    return ((IPEndPoint)l.LocalEndpoint).Port;
}

// utime + stime from /proc/PID/stat (fields 14 and 15, after the parenthesised command), USER_HZ = 100.
static double ProcessCpuSeconds(int pid)
{
    var stat = File.ReadAllText($"/proc/{pid}/stat");
    var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    return (long.Parse(f[11]) + long.Parse(f[12])) / 100.0;
}

// The postmaster and its children (backends, background workers); 0 without --pg-pid.
double PostgresCpuSeconds()
{
    if (pgPid == 0) return 0;
    double sum = 0;
    foreach (var dir in Directory.EnumerateDirectories("/proc"))
    {
        if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
        try
        {
            var stat = File.ReadAllText(Path.Combine(dir, "stat"));
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (pid == pgPid || int.Parse(f[1]) == pgPid) sum += (long.Parse(f[11]) + long.Parse(f[12])) / 100.0;
        }
        catch (IOException) { } // the process ended meanwhile
    }
    return sum;
}

static double SelfCpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

// All CPUs' non-idle time from the first line of /proc/stat (user nice system idle iowait irq softirq steal).
static double MachineBusySeconds()
{
    var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(long.Parse).ToArray();
    return (f.Sum() - f[3] - f[4]) / 100.0;
}

static string Cores(Row r) => double.IsNaN(r.ApiCores) ? "" : $"{r.ApiCores:F2} / {r.PgCores:F2} / {r.BenchCores:F2} / {r.OtherCores:F2}";

static void Progress(string line) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {line}");

enum Op { ListFirst, ListMiddle, Create }

record Request(Op Op, HttpMethod Method, string Path, string? Json);

record struct Sample(Op Op, double Ms, bool Ok);

record Row(string Provider, string Scenario, int Count, int Errors, double Seconds, double[] Sorted, List<Sample> Samples)
{
    public double ApiCores { get; init; } = double.NaN;
    public double PgCores { get; init; } = double.NaN;
    public double BenchCores { get; init; } = double.NaN;
    public double OtherCores { get; init; } = double.NaN;

    public static Row Of(string provider, string scenario, List<Sample> samples, double seconds) =>
        new(provider, scenario, samples.Count, samples.Count(s => !s.Ok), seconds,
            samples.Select(s => s.Ms).Order().ToArray(), samples);

    /// <summary>Nearest-rank percentile in milliseconds; q = 1 is the maximum.</summary>
    public double P(double q) => Sorted.Length == 0 ? double.NaN
        : Sorted[Math.Clamp((int)Math.Ceiling(q * Sorted.Length) - 1, 0, Sorted.Length - 1)];
}
