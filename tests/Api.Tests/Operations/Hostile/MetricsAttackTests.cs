using System.Net;
using System.Net.Http.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Operations.Hostile;

/// <summary>
/// <c>/metrics</c> on the Api's public port describes every tenant (paths, rates, audit outcomes): a
/// stranger, a tenant (even a team owner) and a node agent are refused; platform admins read it, with a
/// personal access token or an OIDC access token.
/// </summary>
[Trait("Suite", "Hostile")]
[Collection("sqlite")]
public sealed class MetricsAttackTests(SqliteFixture fixture)
{
    private readonly PlatformHost _host = fixture.Host;
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];

    private static async Task<(HttpStatusCode Status, string Body)> ScrapeAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/metrics");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<string> NodeTokenAsync()
    {
        var join = await _host.Admin().PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created);
        var joined = await _host.Http().PostAsJsonAsync("/api/v1/nodes/join",
            new { joinToken = join.GetProperty("token").GetString(), name = "metrics-" + _run, address = $"198.51.100.{Random.Shared.Next(1, 254)}" })
            .ShouldBeAsync(HttpStatusCode.OK);
        var token = await _host.Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = joined.GetProperty("clientId").GetString()!,
            ["client_secret"] = joined.GetProperty("clientSecret").GetString()!, ["scope"] = "platform",
        })).ShouldBeAsync(HttpStatusCode.OK);
        return token.GetProperty("access_token").GetString()!;
    }

    [Fact]
    public async Task Scraping_metrics_without_being_a_platform_admin_is_refused_and_shows_no_figures()
    {
        var team = "mt-" + _run;
        var ownerEmail = $"owner-{team}@example.com";
        var owner = _host.Http(await _host.UserTokenAsync(ownerEmail));
        await _host.Admin().PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await _host.Admin().PutAsJsonAsync($"/api/v1/teams/{team}/members/{ownerEmail}", new { role = "owner" }).ShouldBeAsync(HttpStatusCode.OK);
        var ownerOidc = _host.Http(await _host.PasswordGrantAsync(ownerEmail, "user-password-1"));

        var refused = new List<(string Who, HttpClient Client, HttpStatusCode Expected)>
        {
            ("anonymous", _host.Http(), HttpStatusCode.Unauthorized),
            ("a forged bearer token", _host.Http("plat_not_a_real_token_0123456789abcdef"), HttpStatusCode.Unauthorized),
            ("a team owner (personal access token)", owner, HttpStatusCode.Forbidden),
            ("a team owner (OIDC token)", ownerOidc, HttpStatusCode.Forbidden),
            ("a node agent", _host.Http(await NodeTokenAsync()), HttpStatusCode.Forbidden),
        };
        foreach (var (who, client, expected) in refused)
        {
            var (status, body) = await ScrapeAsync(client);
            Assert.True(status == expected, $"{who}: expected {(int)expected}, got {(int)status}");
            Assert.DoesNotContain("http_server_request_duration_seconds", body);
        }

        // Positive control: platform admins scrape, with either kind of token.
        var adminOidc = _host.Http(await _host.PasswordGrantAsync(PlatformHost.AdminEmail, PlatformHost.AdminPassword));
        var secondAdmin = _host.Http(await _host.UserTokenAsync($"admin-{team}@example.com", platformAdmin: true));
        foreach (var client in new[] { _host.Admin(), adminOidc, secondAdmin })
        {
            var (status, body) = await ScrapeAsync(client);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Contains("http_server_request_duration_seconds", body);
        }
    }
}
