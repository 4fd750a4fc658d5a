using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Routing;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Routing;

/// <summary>
/// Custom domains through the HTTP API and the router, on both providers: a developer claims a host and the router
/// sends it to the app; a host belongs to one app platform-wide; bad hosts, hosts outside a team's suffixes and
/// uploaded certificates that do not fit are refused naming the field.
/// </summary>
public abstract class DomainsTests(PlatformHost host)
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];

    /// <summary>A team with project web, app shop (image never pushed: no instance is placed) and a developer; returns the developer's client and the app's domains URL.</summary>
    private async Task<(HttpClient Dev, string Domains)> TeamAsync(string name)
    {
        var admin = host.Admin();
        var team = $"{name}-{_run}";
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "web" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps", new { name = "shop", image = $"{team}/web/shop:1", instances = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var email = $"dev-{team}@example.com";
        var dev = host.Http(await host.UserTokenAsync(email));
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{email}", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        return (dev, $"/api/v1/teams/{team}/projects/web/apps/shop/domains");
    }

    private async Task<HttpResponseMessage> ThroughRouterAsync(string hostName)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, host.Services.GetRequiredService<Router>().Address!);
        request.Headers.Host = hostName;
        return await new HttpClient().SendAsync(request);
    }

    [Fact]
    public async Task A_claimed_host_is_routed_to_its_app_and_no_other_team_can_take_it_until_it_is_released()
    {
        var (dev, domains) = await TeamAsync("dom");
        var (rival, rivalDomains) = await TeamAsync("rival");
        var hostName = $"shop-{_run}.example.com";
        var (backend, port) = await StandIns.BackendAsync("shop");
        await using var shop = backend;

        var claimed = await dev.PutAsJsonAsync($"{domains}/{hostName.ToUpperInvariant()}", new { }).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal(hostName, claimed.GetProperty("host").GetString());   // normalized
        Assert.Equal("Pending", claimed.GetProperty("state").GetString());
        Assert.Contains("No ACME directory is configured", claimed.GetProperty("message").GetString());
        Assert.StartsWith($"{hostName}. CNAME shop-web-dom-{_run}.apps.localhost.", claimed.GetProperty("dnsRecord").GetString());
        var listed = await dev.GetAsync(domains).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal([hostName], listed.GetProperty("items").EnumerateArray().Select(d => d.GetProperty("host").GetString()));

        // The router sends the host to the app's instances, with the host the client asked for.
        await StandIns.RunAsync(host, $"dom-{_run}", "shop", port);
        string body = "";
        await Nodes.Cluster.WaitAsync(async () =>
        {
            using var r = await ThroughRouterAsync(hostName);
            body = await r.Content.ReadAsStringAsync();
            return r.StatusCode == HttpStatusCode.OK;
        }, 10, () => $"the custom host routed: {body}");
        Assert.StartsWith($"shop host={hostName} ", body);
        using (var unknown = await ThroughRouterAsync($"other-{_run}.example.com"))   // the control: an unclaimed host is nobody's
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        // Another team cannot claim it, and is not told whose it is.
        var taken = await rival.PutAsJsonAsync($"{rivalDomains}/{hostName}", new { }).ShouldBeAsync(HttpStatusCode.Conflict);
        Assert.True(taken.GetProperty("errors").TryGetProperty("host", out _));
        Assert.DoesNotContain($"dom-{_run}", taken.ToString());
        Assert.DoesNotContain("shop", taken.GetProperty("detail").GetString()!.Replace(hostName, ""));

        // Claiming it again is idempotent for its own app; releasing it frees it for the other team.
        await dev.PutAsJsonAsync($"{domains}/{hostName}", new { }).ShouldBeAsync(HttpStatusCode.OK);
        await dev.DeleteAsync($"{domains}/{hostName}").ShouldBeAsync(HttpStatusCode.NoContent);
        await dev.DeleteAsync($"{domains}/{hostName}").ShouldBeAsync(HttpStatusCode.NotFound);
        await rival.PutAsJsonAsync($"{rivalDomains}/{hostName}", new { }).ShouldBeAsync(HttpStatusCode.Created);

        var audit = await host.Admin().GetAsync($"/api/v1/teams/dom-{_run}/audit").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Contains($"domain {hostName} (app dom-{_run}/web/shop)", audit.ToString());
    }

    [Theory]
    [InlineData("localhost", "at least two labels")]
    [InlineData("*.example.com", "wildcards")]
    [InlineData("192.0.2.1", "not an IP address")]
    [InlineData("x.apps.localhost", "the platform's own apps domain")]
    [InlineData("exa_mple.com", "invalid label 'exa_mple'")]
    [InlineData("-bad.example.com", "invalid label '-bad'")]
    [InlineData("example.123", "top-level name")]
    public async Task Hosts_that_are_not_a_claimable_name_are_refused_naming_the_field(string bad, string why)
    {
        var (dev, domains) = await TeamAsync("bad" + Math.Abs(bad.GetHashCode() % 1000));
        var refused = await dev.PutAsJsonAsync($"{domains}/{Uri.EscapeDataString(bad)}", new { }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains(why, refused.GetProperty("errors").GetProperty("host")[0].GetString());
    }

    [Fact]
    public async Task A_host_longer_than_DNS_allows_is_refused()
    {
        var (dev, domains) = await TeamAsync("long");
        var tooLong = string.Join('.', Enumerable.Repeat(new string('a', 60), 5)) + ".com";
        var refused = await dev.PutAsJsonAsync($"{domains}/{tooLong}", new { }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("at most 253", refused.GetProperty("errors").GetProperty("host")[0].GetString());
    }

    [Fact]
    public async Task Platform_admins_limit_the_suffixes_a_team_may_claim()
    {
        var (dev, domains) = await TeamAsync("sfx");
        var team = $"sfx-{_run}";
        await dev.PutAsJsonAsync($"/api/v1/teams/{team}/domain-suffixes", new { suffixes = new[] { "example.com" } }).ShouldBeAsync(HttpStatusCode.Forbidden);
        await host.Admin().PutAsJsonAsync($"/api/v1/teams/{team}/domain-suffixes", new { suffixes = new[] { "Example.COM", "shop.example.org" } }).ShouldBeAsync(HttpStatusCode.OK);
        var seen = await dev.GetAsync($"/api/v1/teams/{team}/domain-suffixes").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(["example.com", "shop.example.org"], seen.GetProperty("suffixes").EnumerateArray().Select(s => s.GetString()));

        var outside = await dev.PutAsJsonAsync($"{domains}/www.example.org", new { }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("not within the suffixes", outside.GetProperty("errors").GetProperty("host")[0].GetString());
        await dev.PutAsJsonAsync($"{domains}/notexample.com", new { }).ShouldBeAsync(HttpStatusCode.UnprocessableEntity);   // a suffix is whole labels
        await dev.PutAsJsonAsync($"{domains}/www-{_run}.example.com", new { }).ShouldBeAsync(HttpStatusCode.Created);
        await dev.PutAsJsonAsync($"{domains}/shop.example.org", new { }).ShouldBeAsync(HttpStatusCode.Created);
        var badSuffix = await host.Admin().PutAsJsonAsync($"/api/v1/teams/{team}/domain-suffixes", new { suffixes = new[] { "ok.example", "*.x.com" } })
            .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
        Assert.True(badSuffix.GetProperty("errors").TryGetProperty("suffixes[1]", out _), badSuffix.ToString());
    }

    /// <summary>A certificate for <paramref name="names"/> and its key in PEM (self-signed, valid between the given offsets from now).</summary>
    public static (string Chain, string Key) Certificate(string[] names, TimeSpan from, TimeSpan to, ECDsa? key = null)
    {
        key ??= ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var n in names) san.AddDnsName(n);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow + from, DateTimeOffset.UtcNow + to);
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    [Fact]
    public async Task An_uploaded_certificate_is_taken_only_when_its_key_matches_it_covers_the_host_and_it_is_valid_now()
    {
        var (dev, domains) = await TeamAsync("crt");
        var hostName = $"secure-{_run}.example.com";
        var good = Certificate([hostName], TimeSpan.FromDays(-1), TimeSpan.FromDays(60));
        var otherKey = Certificate([hostName], TimeSpan.FromDays(-1), TimeSpan.FromDays(60)).Key;

        async Task<string> RefusedAsync(string chain, string key, string field)
        {
            var refused = await dev.PutAsJsonAsync($"{domains}/{hostName}", new { certificate = new { chainPem = chain, keyPem = key } })
                .ShouldBeAsync(HttpStatusCode.UnprocessableEntity);
            Assert.True(refused.GetProperty("errors").TryGetProperty(field, out var messages), refused.ToString());
            return messages[0].GetString()!;
        }
        Assert.Contains("does not match", await RefusedAsync(good.Chain, otherKey, "certificate.keyPem"));
        var wrongHost = Certificate([$"elsewhere-{_run}.example.com"], TimeSpan.FromDays(-1), TimeSpan.FromDays(60));
        Assert.Contains($"does not cover {hostName}", await RefusedAsync(wrongHost.Chain, wrongHost.Key, "certificate.chainPem"));
        var expired = Certificate([hostName], TimeSpan.FromDays(-30), TimeSpan.FromDays(-1));
        Assert.Contains("has expired", await RefusedAsync(expired.Chain, expired.Key, "certificate.chainPem"));
        Assert.Contains("no PEM certificate", await RefusedAsync("not a certificate", good.Key, "certificate.chainPem"));
        Assert.Contains("is required", await RefusedAsync(good.Chain, "", "certificate.keyPem"));

        var wildcard = Certificate([$"*.{_run}.example.com"], TimeSpan.FromDays(-1), TimeSpan.FromDays(60));
        var viaWildcard = await dev.PutAsJsonAsync($"{domains}/www.{_run}.example.com", new { certificate = new { chainPem = wildcard.Chain, keyPem = wildcard.Key } })
            .ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal("Ready", viaWildcard.GetProperty("state").GetString());

        var taken = await dev.PutAsJsonAsync($"{domains}/{hostName}", new { certificate = new { chainPem = good.Chain, keyPem = good.Key } })
            .ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal("Ready", taken.GetProperty("state").GetString());
        Assert.Equal("uploaded", taken.GetProperty("source").GetString());
        Assert.True(taken.GetProperty("notAfter").GetDateTime() > DateTime.UtcNow.AddDays(59));
        Assert.Equal(JsonValueKind.Null, taken.GetProperty("renewAt").ValueKind);   // an upload is not renewed by the platform
        Assert.DoesNotContain("PRIVATE KEY", taken.ToString());
    }
}

[Collection("sqlite")]
public sealed class SqliteDomainsTests(SqliteFixture f) : DomainsTests(f.Host);

[Collection("postgres")]
public sealed class PostgresDomainsTests(PostgresFixture f) : DomainsTests(f.Host);
