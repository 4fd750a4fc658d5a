using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Domains;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;
using Platform.Data;

namespace Platform.Api.Tests.Routing;

/// <summary>
/// Debian's pebble (Let's Encrypt's test ACME server) on loopback, with pebble-challtestsrv as its DNS (every name
/// resolves to 127.0.0.1) and the router's HTTP port as the port it validates http-01 on: the platform orders a
/// certificate for a custom domain, answers the challenge through the router, and serves the certificate over HTTPS.
/// </summary>
public sealed class AcmeTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-acme-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<Process> _processes = [];
    private readonly int _pebblePort = Run.FreePort(), _pebbleManagement = Run.FreePort(), _dnsPort = Run.FreePort(), _challManagement = Run.FreePort();
    private PlatformHost _host = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        // pebble ships no certificate for its own HTTPS listener: one for 127.0.0.1, which the Api is told to trust.
        using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            var request = new CertificateRequest("CN=pebble", key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
            await File.WriteAllTextAsync(Path.Combine(_dir, "cert.pem"), cert.ExportCertificatePem());
            await File.WriteAllTextAsync(Path.Combine(_dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        }
        _host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?>
        {
            ["Platform:Ingress:HttpsUrl"] = "https://127.0.0.1:0",
            ["Platform:Acme:DirectoryUrl"] = $"https://127.0.0.1:{_pebblePort}/dir",
            ["Platform:Acme:TrustedCaFile"] = Path.Combine(_dir, "cert.pem"),
            ["Platform:Acme:Email"] = "ops@example.com",
        });
        var routerPort = _host.Services.GetRequiredService<Router>().Address!.Port;
        await File.WriteAllTextAsync(Path.Combine(_dir, "pebble.json"), JsonSerializer.Serialize(new
        {
            pebble = new
            {
                listenAddress = $"127.0.0.1:{_pebblePort}", managementListenAddress = $"127.0.0.1:{_pebbleManagement}",
                certificate = Path.Combine(_dir, "cert.pem"), privateKey = Path.Combine(_dir, "key.pem"),
                httpPort = routerPort, tlsPort = Run.FreePort(), ocspResponderURL = "", externalAccountBindingRequired = false,
            },
        }));
        _processes.Add(Built.Start("pebble-challtestsrv", ["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", $"127.0.0.1:{_dnsPort}",
            "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", $"127.0.0.1:{_challManagement}"], new Dictionary<string, string>(), Path.Combine(_dir, "challtestsrv.log")));
        // No random sleeps in its validation; its 5 % of rejected nonces stay, so the client's badNonce retry is exercised.
        _processes.Add(Built.Start("pebble", ["-config", Path.Combine(_dir, "pebble.json"), "-dnsserver", $"127.0.0.1:{_dnsPort}"],
            new Dictionary<string, string> { ["PEBBLE_VA_NOSLEEP"] = "1" }, Path.Combine(_dir, "pebble.log")));
        using var probe = Insecure();
        await Nodes.Cluster.WaitAsync(async () =>
        {
            try { return (await probe.GetAsync($"https://127.0.0.1:{_pebblePort}/dir")).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, 30, () => "pebble to answer: " + Log("pebble.log"));
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes.Where(p => !p.HasExited)) { p.Kill(entireProcessTree: true); await p.WaitForExitAsync(); }
        await _host.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Log(string name) => File.Exists(Path.Combine(_dir, name)) ? string.Join("\n", File.ReadLines(Path.Combine(_dir, name)).TakeLast(20)) : "(no log)";

    private static HttpClient Insecure() => new(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });

    /// <summary>A client that trusts only <paramref name="root"/> and connects every name to 127.0.0.1:<paramref name="port"/> (as curl --resolve), recording the certificate shown.</summary>
    private static HttpClient Pinned(X509Certificate2 root, int port, Action<X509Certificate2> shown) => new(new SocketsHttpHandler
    {
        ConnectCallback = StandIns.ToLoopback(port),
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;
                using var custom = new X509Chain();
                custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                custom.ChainPolicy.CustomTrustStore.Add(root);
                custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                if (chain is not null) custom.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
                var leaf = new X509Certificate2(certificate);
                shown(leaf);
                return custom.Build(leaf);
            },
        },
    });

    private async Task<JsonElement> DomainAsync(string host) =>
        (await _host.Admin().GetFromJsonAsync<JsonElement>("/api/v1/teams/acme/projects/p/apps/shop/domains")).GetProperty("items").EnumerateArray().Single(d => d.GetProperty("host").GetString() == host);

    [Fact]
    public async Task Pebble_issues_a_certificate_for_a_custom_domain_which_is_served_renewed_without_a_failed_request_and_an_unanswerable_challenge_fails_in_the_CAs_words()
    {
        var admin = _host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "acme" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/acme/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/acme/projects/p/apps", new { name = "shop", image = "acme/p/shop:1", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var (backend, port) = await StandIns.BackendAsync("shop");
        await using var shop = backend;
        await StandIns.RunAsync(_host, "acme", "shop", port);
        const string host = "shop.example.test";
        var router = _host.Services.GetRequiredService<Router>();

        var claimed = await admin.PutAsJsonAsync($"/api/v1/teams/acme/projects/p/apps/shop/domains/{host}", new { }).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal("Pending", claimed.GetProperty("state").GetString());
        JsonElement domain = default;
        await Nodes.Cluster.WaitAsync(async () => (domain = await DomainAsync(host)).GetProperty("state").GetString() is "Ready" or "Failed", 90,
            () => $"the certificate: {domain}\n{Log("pebble.log")}");
        Assert.True(domain.GetProperty("state").GetString() == "Ready", $"{domain}\n{Log("pebble.log")}");
        Assert.StartsWith("certificate issued by Pebble Intermediate CA", domain.GetProperty("message").GetString());
        Assert.Equal("acme", domain.GetProperty("source").GetString());
        Assert.True(domain.GetProperty("renewAt").GetDateTime() < domain.GetProperty("notAfter").GetDateTime());

        // The root pebble signs with, from its management listener; curl checks the chain the router serves against it.
        using var insecure = Insecure();
        var rootPem = await insecure.GetStringAsync($"https://127.0.0.1:{_pebbleManagement}/roots/0");
        var rootFile = Path.Combine(_dir, "root.pem");
        await File.WriteAllTextAsync(rootFile, rootPem);
        var https = router.HttpsAddress!.Port;
        string body = "";
        await Nodes.Cluster.WaitAsync(async () =>
        {
            var curl = await Run.ToolAsync("curl", ["-sS", "--max-time", "10", "--resolve", $"{host}:{https}:127.0.0.1", "--cacert", rootFile, $"https://{host}:{https}/"]);
            body = curl.Stdout + curl.Stderr;
            return curl.Succeeded;
        }, 10, () => $"curl over HTTPS: {body}");
        Assert.StartsWith($"shop host={host}:{https} ", body);
        var redirect = await Run.ToolAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", $"{host}:{router.Address!.Port}:127.0.0.1", $"http://{host}:{router.Address.Port}/a?b=1"]);
        Assert.Equal($"308 https://{host}:{https}/a?b=1", redirect.Stdout.Trim());

        // A renewal (forced: its time brought forward) replaces the certificate between two handshakes while a client keeps asking.
        using var root = X509Certificate2.CreateFromPem(rootPem);
        X509Certificate2? shown = null;
        using var client = Pinned(root, https, c => shown = c);
        (await client.GetAsync($"https://{host}:{https}/")).EnsureSuccessStatusCode();
        var first = shown!.SerialNumber;
        long ok = 0, failed = 0;
        var failures = new List<string>();
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    // A new connection each time, so each request is a new handshake with whatever is served then.
                    using var c = Pinned(root, https, _ => { });
                    using var r = await c.GetAsync($"https://{host}:{https}/");
                    if (r.IsSuccessStatusCode) Interlocked.Increment(ref ok); else { Interlocked.Increment(ref failed); lock (failures) failures.Add(((int)r.StatusCode).ToString()); }
                }
                catch (HttpRequestException e) { Interlocked.Increment(ref failed); lock (failures) failures.Add(e.Message); }
            }
        });
        using (var scope = _host.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            var id = await db.CustomDomains.Where(d => d.Host == host).Select(d => d.Id).SingleAsync();
            await db.CustomDomains.Where(d => d.Id == id).ExecuteUpdateAsync(s => s.SetProperty(d => d.NextAttemptAt, DateTime.UtcNow.AddSeconds(-1)));
            await scope.ServiceProvider.GetRequiredService<DomainIssuer>().RunAsync(id, CancellationToken.None);
        }
        await Nodes.Cluster.WaitAsync(async () =>
        {
            using var c = Pinned(root, https, x => shown = x);
            (await c.GetAsync($"https://{host}:{https}/")).EnsureSuccessStatusCode();
            return shown!.SerialNumber != first;
        }, 10, () => $"the renewed certificate served: {DomainAsync(host).Result}");
        await Nodes.Cluster.WaitAsync(() => Task.FromResult(Interlocked.Read(ref ok) >= 20), 30, "requests after the renewal");
        stop.Cancel();
        await load;
        Assert.True(failed == 0, $"{failed} of {ok + failed} requests failed during the renewal: {string.Join("; ", failures.Take(5))}");
        Assert.Equal("Ready", (await DomainAsync(host)).GetProperty("state").GetString());

        // A challenge the CA cannot reach (its DNS sends this name to 127.0.0.2, where nothing listens): Failed, in pebble's words.
        using (var dns = new HttpClient())
            (await dns.PostAsJsonAsync($"http://127.0.0.1:{_challManagement}/add-a", new { host = "lost.example.test.", addresses = new[] { "127.0.0.2" } })).EnsureSuccessStatusCode();
        await admin.PutAsJsonAsync("/api/v1/teams/acme/projects/p/apps/shop/domains/lost.example.test", new { }).ShouldBeAsync(HttpStatusCode.Created);
        JsonElement lost = default;
        await Nodes.Cluster.WaitAsync(async () => (lost = await DomainAsync("lost.example.test")).GetProperty("state").GetString() == "Failed", 90,
            () => $"the unanswerable domain to fail: {lost}");
        var message = lost.GetProperty("message").GetString()!;
        Assert.StartsWith("ACME: ", message);
        Assert.Contains("127.0.0.2", message);   // pebble's own detail names where it tried
        Assert.Contains("attempt 1; next at", message);
        // The certificate of the first host is untouched by the other's failure.
        Assert.Equal("Ready", (await DomainAsync(host)).GetProperty("state").GetString());
    }
}
