using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Platform.Contracts;
using Platform.Data;
using static BenchKit;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Router benchmark (issue 14), as root on one machine: the platform's router (YARP in the real Api process) against
// Debian's nginx as a reverse proxy, both in front of the same backend (a second nginx answering 13 bytes from
// memory on loopback), over HTTP and over HTTPS (the same certificate, served by SNI), wrk with keep-alive and 50
// connections, rounds alternating between the two. The backend is also measured directly, as the floor. Figures:
// requests per second, p50 and p99 latency, the router/nginx throughput ratio and the router's added latency.
// The stand-in instance (the backend) is written into the Api's database with the platform's own model, as the
// router tests do: no node agent or container runs, so only the proxies are measured.
// Usage: dotnet bench/RouterBench/bin/Release/net10.0/RouterBench.dll <repo root> [rounds] [seconds]
var repo = Path.GetFullPath(args.ElementAtOrDefault(0) ?? ".");
var rounds = int.Parse(args.ElementAtOrDefault(1) ?? "3", CultureInfo.InvariantCulture);
var seconds = int.Parse(args.ElementAtOrDefault(2) ?? "10", CultureInfo.InvariantCulture);
const string Host = "bench.example.test";
const string Token = "plat_router_bench_token_0123456789abcdef";
var work = Path.Combine("/var/tmp", "router-bench-" + Guid.NewGuid().ToString("N")[..6]);
Directory.CreateDirectory(work);
var processes = new List<System.Diagnostics.Process>();
int backend = FreePort(), nginxHttp = FreePort(), nginxHttps = FreePort(), apiPort = FreePort(), routerHttp = FreePort(), routerHttps = FreePort();

try
{
    // One certificate for both proxies.
    using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
    {
        var request = new CertificateRequest($"CN={Host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(Host);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        await File.WriteAllTextAsync(Path.Combine(work, "cert.pem"), cert.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(work, "key.pem"), key.ExportPkcs8PrivateKeyPem());
    }
    await File.WriteAllTextAsync(Path.Combine(work, "hosts"), $"127.0.0.1 localhost {Host}\n");

    // The backend: nginx, one worker, a fixed answer from memory.
    StartNginx("backend", 1, $$"""
        server { listen 127.0.0.1:{{backend}}; keepalive_requests 1000000; location / { default_type text/plain; return 200 "hello, bench\n"; } }
        """);
    // The reference proxy: nginx as people run it in front of an app (as many workers as cores, upstream keep-alive).
    StartNginx("proxy", 0, $$"""
        upstream app { server 127.0.0.1:{{backend}}; keepalive 64; }
        server {
            listen 127.0.0.1:{{nginxHttp}};
            listen 127.0.0.1:{{nginxHttps}} ssl http2;
            ssl_certificate {{work}}/cert.pem; ssl_certificate_key {{work}}/key.pem;
            keepalive_requests 1000000;
            location / {
                proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
                proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme;
            }
        }
        """);

    // The platform: the real Api (its router on two listeners), access log off as nginx's is.
    processes.Add(Start(Path.Combine(repo, "src/Api/bin/Release/net10.0/Platform.Api.dll"), new()
    {
        ["Platform__DataDir"] = Path.Combine(work, "api"), ["Platform__Bootstrap__AdminEmail"] = "admin@bench.local",
        ["Platform__Bootstrap__AdminPassword"] = "bench-password-1", ["Platform__Bootstrap__AdminToken"] = Token,
        ["Platform__Ingress__Url"] = $"http://127.0.0.1:{routerHttp}", ["Platform__Ingress__HttpsUrl"] = $"https://127.0.0.1:{routerHttps}",
        ["Platform__Ingress__AccessLog"] = "false", ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{apiPort}", ["Logging__LogLevel__Default"] = "Warning",
    }, Path.Combine(work, "api.log")));
    using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}/") };
    http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
    await Until(async () => (await Try(() => http.GetAsync("healthz")))?.IsSuccessStatusCode == true, 60, "the Api");
    (await http.PostAsJsonAsync("api/v1/teams", new { name = "bench" })).EnsureSuccessStatusCode();
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects", new { name = "p" })).EnsureSuccessStatusCode();
    (await http.PostAsJsonAsync("api/v1/teams/bench/projects/p/apps", new { name = "web", image = "bench/p/web:1", instances = 1, httpsRedirect = false })).EnsureSuccessStatusCode();
    (await http.PutAsJsonAsync($"api/v1/teams/bench/projects/p/apps/web/domains/{Host}", new
    {
        certificate = new { chainPem = await File.ReadAllTextAsync(Path.Combine(work, "cert.pem")), keyPem = await File.ReadAllTextAsync(Path.Combine(work, "key.pem")) },
    })).EnsureSuccessStatusCode();
    var db = new PlatformDbContext(new DbContextOptionsBuilder<PlatformDbContext>().UseSqlite($"Data Source={Path.Combine(work, "api", "platform.db")}").Options);
    await using (db)
    {
        var app = await db.Apps.SingleAsync(a => a.Name == "web");
        var node = new Node { Name = "bench-stand-in", ClientId = "node-bench-stand-in", Address = "127.0.0.1", LastHeartbeatAt = DateTime.UtcNow.AddDays(1) };
        db.Nodes.Add(node);
        db.Instances.Add(new Instance
        {
            Id = Guid.NewGuid(), AppId = app.Id, NodeId = node.Id, ImageRepository = "bench/p/web", ImageDigest = "sha256:" + new string('0', 64),
            State = InstanceStates.Ready, HostPort = backend, Generation = 1, CreatedAt = DateTime.UtcNow, UpdatedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();
    }
    foreach (var url in new[] { $"http://{Host}:{routerHttp}/", $"https://{Host}:{routerHttps}/", $"https://{Host}:{nginxHttps}/", $"http://{Host}:{nginxHttp}/" })
        await Until(async () => (await Curl(url)).Contains("hello, bench"), 30, url);

    var targets = new (string Name, string Scheme, string Url)[]
    {
        ("backend direct", "http", $"http://{Host}:{backend}/"),
        ("nginx", "http", $"http://{Host}:{nginxHttp}/"), ("router", "http", $"http://{Host}:{routerHttp}/"),
        ("nginx", "https", $"https://{Host}:{nginxHttps}/"), ("router", "https", $"https://{Host}:{routerHttps}/"),
    };
    // Warm-up (JIT, connection pools), not counted.
    foreach (var t in targets) await WrkAsync(t.Url, 3);
    var results = targets.ToDictionary(t => (t.Name, t.Scheme), _ => new List<(double Rps, double P50, double P99)>());
    for (var round = 0; round < rounds; round++)
        foreach (var t in round % 2 == 0 ? targets : targets.Reverse())
        {
            var r = await WrkAsync(t.Url, seconds);
            results[(t.Name, t.Scheme)].Add(r);
            Console.Error.WriteLine($"    {t.Scheme} {t.Name}, round {round + 1}: {r.Rps:F0} req/s, p50 {r.P50:F3} ms, p99 {r.P99:F3} ms");
        }

    Console.WriteLine($"Router vs nginx in front of the same backend, wrk -t2 -c50 keep-alive, {seconds} s × {rounds} rounds (medians), 2 cores shared by all");
    Console.WriteLine("| protocol | proxy | requests/s | p50 | p99 | vs nginx: throughput | added p50 | added p99 |");
    Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|");
    foreach (var ((name, scheme), list) in results)
    {
        var (rps, p50, p99) = (Median(list.Select(r => r.Rps)), Median(list.Select(r => r.P50)), Median(list.Select(r => r.P99)));
        var versus = name == "router" ? results[("nginx", scheme)] : null;
        var cells = versus is null ? "| | |"
            : $"{rps / Median(versus.Select(r => r.Rps)):F2}× | {p50 - Median(versus.Select(r => r.P50)):+0.000;-0.000} ms | {p99 - Median(versus.Select(r => r.P99)):+0.000;-0.000} ms";
        Console.WriteLine($"| {scheme} | {name} | {rps:F0} | {p50:F3} ms | {p99:F3} ms | {cells} |");
    }
}
finally
{
    foreach (var p in processes.Where(p => !p.HasExited)) { p.Kill(entireProcessTree: true); p.WaitForExit(); }
    foreach (var name in new[] { "backend", "proxy" })
        if (File.Exists(Path.Combine(work, name, "nginx.pid"))) await Tool("nginx", "-p", Path.Combine(work, name), "-c", "nginx.conf", "-s", "stop");
    Console.Error.WriteLine($"==> logs kept in {work}; remove it with rm -rf when done");
}

void StartNginx(string name, int workers, string servers)
{
    var dir = Path.Combine(work, name);
    Directory.CreateDirectory(Path.Combine(dir, "logs"));
    File.WriteAllText(Path.Combine(dir, "nginx.conf"), $$"""
        worker_processes {{(workers == 0 ? "auto" : workers.ToString(CultureInfo.InvariantCulture))}};
        pid {{dir}}/nginx.pid;
        error_log {{dir}}/logs/error.log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path {{dir}}/body; proxy_temp_path {{dir}}/proxy; fastcgi_temp_path {{dir}}/fastcgi; uwsgi_temp_path {{dir}}/uwsgi; scgi_temp_path {{dir}}/scgi;
            {{servers}}
        }
        """);
    var r = Tool("nginx", "-p", dir, "-c", "nginx.conf").GetAwaiter().GetResult();
    if (r.ExitCode != 0) throw new InvalidOperationException($"nginx {name}: {r.Stderr}");
}

// Every client sees bench.example.test at 127.0.0.1 through a hosts file of its own mount name-space (curl and wrk
// take the name from the URL for SNI; the machine's /etc/hosts is not touched).
async Task<string> Curl(string url) =>
    (await Tool("unshare", "-m", "sh", "-c", $"mount --bind {work}/hosts /etc/hosts && exec curl -sk --max-time 5 {url}")).Stdout;

async Task<(double Rps, double P50, double P99)> WrkAsync(string url, int duration)
{
    var output = await Check(Tool("unshare", "-m", "sh", "-c", $"mount --bind {work}/hosts /etc/hosts && exec wrk -t2 -c50 -d{duration}s --latency {url}"));
    var rps = double.Parse(Regex.Match(output, @"Requests/sec:\s+([\d.]+)").Groups[1].Value, CultureInfo.InvariantCulture);
    double Percentile(string p)
    {
        var m = Regex.Match(output, $@"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        var v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch { "us" => v / 1000, "s" => v * 1000, _ => v };
    }
    if (Regex.Match(output, @"Non-2xx or 3xx responses:\s+(\d+)") is { Success: true } bad)
        throw new InvalidOperationException($"{url}: {bad.Groups[1].Value} answers were not 2xx/3xx:\n{output}");
    return (rps, Percentile("50"), Percentile("99"));
}
