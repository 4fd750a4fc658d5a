using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.WebSockets;
using System.Text;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Routing;

/// <summary>
/// The router's HTTPS listener: the certificate picked per host from the SNI name, HTTP/2 and HTTP/1.1 over TLS, WebSockets,
/// plain HTTP redirected to HTTPS for a host with a certificate (unless the app opts out), HSTS when asked, and no
/// certificate at all for a name the platform holds none for.
/// </summary>
public sealed class RouterTlsTests
{
    /// <summary>A client that connects every host name to 127.0.0.1:<paramref name="port"/> (as curl --resolve) and records the certificate it was shown.</summary>
    private static HttpClient Client(int port, Action<X509Certificate2?> shown) => new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        ConnectCallback = StandIns.ToLoopback(port),
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                shown(certificate is null ? null : new X509Certificate2(certificate));
                return true;   // self-signed test certificates: the test compares what it was shown
            },
        },
    });

    [Fact]
    public async Task A_custom_domain_with_a_certificate_is_served_over_https_with_its_own_certificate_and_http_redirects_to_it()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?> { ["Platform:Ingress:HttpsUrl"] = "https://127.0.0.1:0" });
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "tls" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/tls/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/tls/projects/p/apps", new { name = "shop", image = "tls/p/shop:1", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/tls/projects/p/apps", new { name = "blog", image = "tls/p/blog:1", instances = 1, httpsRedirect = false, hsts = true }).ShouldBeAsync(HttpStatusCode.Created);
        var (shopBackend, shopPort) = await StandIns.BackendAsync("shop");
        var (blogBackend, blogPort) = await StandIns.BackendAsync("blog");
        await using var _shop = shopBackend;
        await using var _blog = blogBackend;
        await StandIns.RunAsync(host, "tls", "shop", shopPort);
        await StandIns.RunAsync(host, "tls", "blog", blogPort);

        var shop = DomainsTests.Certificate(["shop.example.com"], TimeSpan.FromDays(-1), TimeSpan.FromDays(90));
        var blog = DomainsTests.Certificate(["blog.example.com"], TimeSpan.FromDays(-1), TimeSpan.FromDays(90));
        await admin.PutAsJsonAsync("/api/v1/teams/tls/projects/p/apps/shop/domains/shop.example.com", new { certificate = new { chainPem = shop.Chain, keyPem = shop.Key } })
            .ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync("/api/v1/teams/tls/projects/p/apps/blog/domains/blog.example.com", new { certificate = new { chainPem = blog.Chain, keyPem = blog.Key } })
            .ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync("/api/v1/teams/tls/projects/p/apps/shop/domains/plain.example.com", new { }).ShouldBeAsync(HttpStatusCode.Created);   // no certificate yet

        var router = host.Services.GetRequiredService<Router>();
        var https = router.HttpsAddress!;
        X509Certificate2? seen = null;
        using var client = Client(https.Port, c => seen = c);
        using var expected = X509Certificate2.CreateFromPem(shop.Chain);

        // HTTPS with the host's own certificate, HTTP/2 by ALPN, and the app told the scheme.
        HttpResponseMessage? answer = null;
        await Nodes.Cluster.WaitAsync(async () =>
        {
            try
            {
                answer = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"https://shop.example.com:{https.Port}/x?y=1") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact });
                return answer.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException) { return false; }   // until the route table has loaded the certificate
        }, 10, () => $"shop over HTTPS: {answer?.StatusCode}");
        Assert.Equal(HttpVersion.Version20, answer!.Version);
        Assert.Equal(expected.Thumbprint, seen!.Thumbprint);
        var body = await answer.Content.ReadAsStringAsync();
        Assert.StartsWith($"shop host=shop.example.com:{https.Port} ", body);
        Assert.Contains("xfp=https", body);
        Assert.False(answer.Headers.Contains("Strict-Transport-Security"));

        // WebSockets over TLS pass through to the app (wss://, the host's certificate).
        using (var socket = new ClientWebSocket())
        {
            seen = null;   // the upgrade opens an HTTP/1.1 connection of its own (the requests above went over HTTP/2): a handshake of its own
            await socket.ConnectAsync(new Uri($"wss://shop.example.com:{https.Port}/"), client, CancellationToken.None);   // the same resolving, recording client
            await socket.SendAsync(Encoding.UTF8.GetBytes("ping"), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[256];
            var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Equal("shop echoes ping", Encoding.UTF8.GetString(buffer, 0, received.Count));
            Assert.Equal(expected.Thumbprint, seen!.Thumbprint);
        }

        // Another host on the same listener gets its own certificate (SNI), with HSTS as its app asks; HTTP/1.1 too.
        using var blogAnswer = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"https://blog.example.com:{https.Port}/"));
        Assert.Equal(HttpStatusCode.OK, blogAnswer.StatusCode);
        using (var blogCert = X509Certificate2.CreateFromPem(blog.Chain)) Assert.Equal(blogCert.Thumbprint, seen!.Thumbprint);
        Assert.Equal("max-age=31536000", blogAnswer.Headers.GetValues("Strict-Transport-Security").Single());

        // Plain HTTP: redirected to HTTPS where a certificate exists, unless the app opted out; served where there is none.
        using var plain = Client(router.Address!.Port, _ => { });
        using var redirected = await plain.GetAsync($"http://shop.example.com:{router.Address.Port}/cart?id=7");
        Assert.Equal(HttpStatusCode.PermanentRedirect, redirected.StatusCode);
        Assert.Equal($"https://shop.example.com:{https.Port}/cart?id=7", redirected.Headers.Location!.ToString());
        using var optedOut = await plain.GetAsync($"http://blog.example.com:{router.Address.Port}/");
        Assert.Equal(HttpStatusCode.OK, optedOut.StatusCode);
        using var noCertificate = await plain.GetAsync($"http://plain.example.com:{router.Address.Port}/");
        Assert.Equal(HttpStatusCode.OK, noCertificate.StatusCode);

        // A name the platform holds no certificate for gets no handshake at all (no other tenant's certificate as a default).
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"https://plain.example.com:{https.Port}/"));
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"https://unknown.example.net:{https.Port}/"));
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"https://shop-p-tls.apps.localhost:{https.Port}/"));   // no wildcard yet

        // The apps domain's wildcard (platform admins): every app host gets HTTPS, and its HTTP redirects.
        var wildcard = DomainsTests.Certificate(["*.apps.localhost"], TimeSpan.FromDays(-1), TimeSpan.FromDays(90));
        var developer = host.Http(await host.UserTokenAsync("dev-tls@example.com"));
        await developer.PutAsJsonAsync("/api/v1/ingress/certificate", new { chainPem = wildcard.Chain, keyPem = wildcard.Key }).ShouldBeAsync(HttpStatusCode.Forbidden);
        var narrow = DomainsTests.Certificate(["shop.example.com"], TimeSpan.FromDays(-1), TimeSpan.FromDays(90));
        var refused = await admin.PutAsJsonAsync("/api/v1/ingress/certificate", new { chainPem = narrow.Chain, keyPem = narrow.Key }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("does not cover app.apps.localhost", refused.GetProperty("errors").GetProperty("certificate.chainPem")[0].GetString());
        var uploaded = await admin.PutAsJsonAsync("/api/v1/ingress/certificate", new { chainPem = wildcard.Chain, keyPem = wildcard.Key }).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(["*.apps.localhost"], uploaded.GetProperty("names").EnumerateArray().Select(n => n.GetString()));
        using var wildcardCert = X509Certificate2.CreateFromPem(wildcard.Chain);
        await Nodes.Cluster.WaitAsync(async () =>
        {
            try { return (await client.GetAsync($"https://shop-p-tls.apps.localhost:{https.Port}/")).StatusCode == HttpStatusCode.OK && seen!.Thumbprint == wildcardCert.Thumbprint; }
            catch (HttpRequestException) { return false; }
        }, 10, "the app host served with the wildcard");
        using var appRedirect = await plain.GetAsync($"http://shop-p-tls.apps.localhost:{router.Address.Port}/");
        Assert.Equal(HttpStatusCode.PermanentRedirect, appRedirect.StatusCode);
        var shown = await admin.GetAsync("/api/v1/teams/tls/projects/p/apps/shop").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal($"https://shop-p-tls.apps.localhost:{https.Port}", shown.GetProperty("url").GetString());   // the app's URL says HTTPS now
        // A custom domain keeps its own certificate; a name two labels down is not the wildcard's.
        await client.GetAsync($"https://shop.example.com:{https.Port}/");
        Assert.Equal(expected.Thumbprint, seen!.Thumbprint);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"https://a.b.apps.localhost:{https.Port}/"));
    }
}
