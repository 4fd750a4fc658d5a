using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;
using Platform.Data;

namespace Platform.Api.Tests.Suite;

/// <summary>Sign-in over real HTTP: code + PKCE through the login page, refresh, password, client credentials, PATs.</summary>
public abstract partial class OidcTests(PlatformHost host)
{
    private const string RedirectUri = "http://localhost:5000/signin-oidc";

    private static (string Verifier, string Challenge) Pkce()
    {
        var verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
        return (verifier, Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
    }

    private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    /// <summary>Follows the browser's path: authorize → login page → post the form → authorize → redirect with a code.</summary>
    private async Task<(HttpResponseMessage Final, HttpClient Browser)> BrowserSignInAsync(string email, string password, string challenge)
    {
        var browser = host.Http(handler: new SocketsHttpHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer(), UseCookies = true });
        var authorize = "/connect/authorize?" + string.Join("&", new Dictionary<string, string>
        {
            ["client_id"] = "platform-portal", ["response_type"] = "code", ["redirect_uri"] = RedirectUri,
            ["scope"] = "openid offline_access platform email", ["state"] = "st4te", ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        }.Select(kv => $"{kv.Key}={Uri.EscapeDataString(kv.Value)}"));
        var toLogin = await browser.GetAsync(authorize);
        Assert.Equal(HttpStatusCode.Redirect, toLogin.StatusCode);
        Assert.StartsWith("/account/login", toLogin.Headers.Location!.PathAndQuery);

        var page = await browser.GetAsync(toLogin.Headers.Location);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("Sign in to Platform", html);
        var returnUrl = HttpUtility.ParseQueryString(toLogin.Headers.Location.Query)["ReturnUrl"]!;
        var posted = await browser.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(AntiforgeryField().Match(html).Groups[1].Value),
            ["email"] = email, ["password"] = password, ["returnUrl"] = returnUrl,
        }));
        if (posted.StatusCode != HttpStatusCode.Redirect)
            return (posted, browser);
        return (await browser.GetAsync(posted.Headers.Location), browser);
    }

    private async Task<JsonElement> TokenAsync(Dictionary<string, string> form, HttpStatusCode expected = HttpStatusCode.OK) =>
        await host.Http().PostAsync("/connect/token", new FormUrlEncodedContent(form)).ShouldBeAsync(expected);

    [Fact]
    public async Task Code_with_pkce_through_the_login_page_then_refresh()
    {
        var (verifier, challenge) = Pkce();
        var (callback, _) = await BrowserSignInAsync(PlatformHost.AdminEmail, PlatformHost.AdminPassword, challenge);
        Assert.Equal(HttpStatusCode.Redirect, callback.StatusCode);
        var location = callback.Headers.Location!;
        Assert.StartsWith(RedirectUri, location.ToString());
        var query = HttpUtility.ParseQueryString(location.Query);
        Assert.Equal("st4te", query["state"]);

        var tokens = await TokenAsync(new()
        {
            ["grant_type"] = "authorization_code", ["client_id"] = "platform-portal", ["code"] = query["code"]!,
            ["redirect_uri"] = RedirectUri, ["code_verifier"] = verifier,
        });
        Assert.True(tokens.TryGetProperty("id_token", out _));
        var access = tokens.GetProperty("access_token").GetString()!;
        var me = await host.Http(access).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(PlatformHost.AdminEmail, me.GetProperty("email").GetString());

        var refreshed = await TokenAsync(new()
        {
            ["grant_type"] = "refresh_token", ["client_id"] = "platform-portal", ["refresh_token"] = tokens.GetProperty("refresh_token").GetString()!,
        });
        await host.Http(refreshed.GetProperty("access_token").GetString()).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_wrong_pkce_verifier_is_refused()
    {
        var (_, challenge) = Pkce();
        var (callback, _) = await BrowserSignInAsync(PlatformHost.AdminEmail, PlatformHost.AdminPassword, challenge);
        var code = HttpUtility.ParseQueryString(callback.Headers.Location!.Query)["code"]!;
        var refused = await TokenAsync(new()
        {
            ["grant_type"] = "authorization_code", ["client_id"] = "platform-portal", ["code"] = code,
            ["redirect_uri"] = RedirectUri, ["code_verifier"] = Pkce().Verifier,
        }, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_grant", refused.GetProperty("error").GetString());
    }

    [Fact]
    public async Task The_login_page_shows_a_wrong_password_and_issues_no_code()
    {
        var (_, challenge) = Pkce();
        var (response, _) = await BrowserSignInAsync(PlatformHost.AdminEmail, "not-the-password", challenge);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("The email or password is wrong.", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Password_grant_works_and_a_wrong_password_is_refused()
    {
        var email = $"pw-{Guid.NewGuid():N}@example.com";
        await host.UserTokenAsync(email, "right-password-1");
        var ok = await TokenAsync(new()
        {
            ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = email, ["password"] = "right-password-1",
            ["scope"] = "offline_access platform",
        });
        Assert.True(ok.TryGetProperty("refresh_token", out _));
        var bad = await TokenAsync(new()
        {
            ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = email, ["password"] = "wrong-password",
        }, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_grant", bad.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Repeated_failures_lock_the_account()
    {
        var email = $"lock-{Guid.NewGuid():N}@example.com";
        await host.UserTokenAsync(email, "right-password-1");
        for (var i = 0; i < 5; i++)
            await TokenAsync(new() { ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = email, ["password"] = "wrong" },
                HttpStatusCode.BadRequest);
        var locked = await TokenAsync(new()
        {
            ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = email, ["password"] = "right-password-1",
        }, HttpStatusCode.BadRequest);
        Assert.Contains("locked", locked.GetProperty("error_description").GetString());
    }

    [Fact]
    public async Task A_revoked_refresh_token_is_refused()
    {
        var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = PlatformHost.AdminEmail,
            ["password"] = PlatformHost.AdminPassword, ["scope"] = "offline_access platform",
        });
        var tokens = await host.Http().PostAsync("/connect/token", form).ShouldBeAsync(HttpStatusCode.OK);
        var refresh = tokens.GetProperty("refresh_token").GetString()!;
        await host.Http().PostAsync("/connect/revoke", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["client_id"] = "platform-cli", ["token"] = refresh, ["token_type_hint"] = "refresh_token",
        })).ShouldBeAsync(HttpStatusCode.OK);
        var refused = await TokenAsync(new() { ["grant_type"] = "refresh_token", ["client_id"] = "platform-cli", ["refresh_token"] = refresh },
            HttpStatusCode.BadRequest);
        Assert.Equal("invalid_grant", refused.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Client_credentials_for_a_joined_node_give_a_machine_token_that_user_endpoints_refuse()
    {
        var join = await host.Admin().PostAsJsonAsync("/api/v1/nodes/join-tokens", new { expiresInHours = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var name = "node-" + Guid.NewGuid().ToString("N")[..8];
        var joined = await host.Http().PostAsJsonAsync("/api/v1/nodes/join", new { joinToken = join.GetProperty("token").GetString(), name, address = "192.0.2.10" })
            .ShouldBeAsync(HttpStatusCode.OK);
        // A join token is spent once.
        await host.Http().PostAsJsonAsync("/api/v1/nodes/join", new { joinToken = join.GetProperty("token").GetString(), name = name + "b", address = "192.0.2.11" })
            .ShouldBeAsync(HttpStatusCode.Unauthorized);

        var token = await TokenAsync(new()
        {
            ["grant_type"] = "client_credentials", ["client_id"] = joined.GetProperty("clientId").GetString()!,
            ["client_secret"] = joined.GetProperty("clientSecret").GetString()!, ["scope"] = "platform",
        });
        await host.Http(token.GetProperty("access_token").GetString()).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.Forbidden);
        await TokenAsync(new()
        {
            ["grant_type"] = "client_credentials", ["client_id"] = joined.GetProperty("clientId").GetString()!, ["client_secret"] = "wrong",
        }, HttpStatusCode.Unauthorized);
        var nodes = await host.Admin().GetAsync("/api/v1/nodes").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Contains(nodes.GetProperty("items").EnumerateArray(), n => n.GetProperty("name").GetString() == name);
    }

    [Fact]
    public async Task Personal_access_tokens_work_as_bearer_and_basic_until_revoked_or_expired()
    {
        var email = $"pat-{Guid.NewGuid():N}@example.com";
        var pat = await host.UserTokenAsync(email);
        await host.Http(pat).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        var basic = host.Http();
        basic.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("git:" + pat)));
        await basic.GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);

        var list = await host.Http(pat).GetAsync("/api/v1/me/tokens").ShouldBeAsync(HttpStatusCode.OK);
        var id = list.GetProperty("items")[0].GetProperty("id").GetString();
        Assert.NotNull(list.GetProperty("items")[0].GetProperty("lastUsedAt").GetString());
        Assert.DoesNotContain(pat, list.ToString());
        await host.Http(pat).DeleteAsync($"/api/v1/me/tokens/{id}").ShouldBeAsync(HttpStatusCode.NoContent);
        await host.Http(pat).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.Unauthorized);

        var second = await host.UserTokenAsync(email);
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            var hash = Platform.Api.Identity.TokenSecrets.Hash(second);
            await db.PersonalAccessTokens.Where(t => t.Hash == hash)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.ExpiresAt, DateTime.UtcNow.AddMinutes(-1)));
        }
        await host.Http(second).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.Unauthorized);
        await host.Http("plat_made-up-token-0123456789abcdef").GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.Unauthorized);
        await host.Http("not-a-jwt").GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Discovery_names_the_endpoints_and_grants()
    {
        var doc = await host.Http().GetAsync("/.well-known/openid-configuration").ShouldBeAsync(HttpStatusCode.OK);
        Assert.EndsWith("/connect/token", doc.GetProperty("token_endpoint").GetString());
        var grants = doc.GetProperty("grant_types_supported").EnumerateArray().Select(g => g.GetString()).ToList();
        Assert.Contains("authorization_code", grants);
        Assert.Contains("password", grants);
        Assert.Contains("client_credentials", grants);
        Assert.Contains("refresh_token", grants);
        Assert.Contains("urn:ietf:params:oauth:grant-type:device_code", grants);
        Assert.EndsWith("/connect/device", doc.GetProperty("device_authorization_endpoint").GetString());
    }

    private const string DeviceGrant = "urn:ietf:params:oauth:grant-type:device_code";

    private async Task<JsonElement> DeviceCodeAsync() =>
        await host.Http().PostAsync("/connect/device", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["client_id"] = "platform-cli", ["scope"] = "openid offline_access platform email",
        })).ShouldBeAsync(HttpStatusCode.OK);

    [Fact]
    public async Task Device_sign_in_waits_for_the_person_who_approves_it_on_the_Api_pages_then_gives_tokens_that_refresh()
    {
        var device = await DeviceCodeAsync();
        var (deviceCode, userCode) = (device.GetProperty("device_code").GetString()!, device.GetProperty("user_code").GetString()!);
        var complete = new Uri(device.GetProperty("verification_uri_complete").GetString()!);
        Assert.EndsWith("/connect/verify", device.GetProperty("verification_uri").GetString());
        var poll = new Dictionary<string, string> { ["grant_type"] = DeviceGrant, ["client_id"] = "platform-cli", ["device_code"] = deviceCode };
        Assert.Equal("authorization_pending", (await TokenAsync(poll, HttpStatusCode.BadRequest)).GetProperty("error").GetString());

        // The person follows the link, signs in, sees who asks, and approves.
        var (page, html, browser) = await Browser.VisitSignedInAsync(host, complete.PathAndQuery, PlatformHost.AdminEmail, PlatformHost.AdminPassword);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("Approve Platform CLI?", html);
        // Never in a frame: an app on the apps domain (same site) cannot frame it and trick a click on Approve.
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        Assert.Contains("frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Contains(WebUtility.HtmlEncode(PlatformHost.AdminEmail), html);
        // A cross-site post (no antiforgery token) approves nothing.
        Assert.Equal(HttpStatusCode.BadRequest, (await Browser.DecideDeviceAsync(browser, html, userCode, "approve", withAntiforgery: false)).StatusCode);
        Assert.Equal("authorization_pending", (await TokenAsync(poll, HttpStatusCode.BadRequest)).GetProperty("error").GetString());
        var approved = await Browser.DecideDeviceAsync(browser, html, userCode, "approve");
        Assert.Equal(HttpStatusCode.Redirect, approved.StatusCode);
        Assert.Equal("/account/device/approved", approved.Headers.Location!.OriginalString);

        var tokens = await TokenAsync(poll);
        var me = await host.Http(tokens.GetProperty("access_token").GetString()).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(PlatformHost.AdminEmail, me.GetProperty("email").GetString());
        var refreshed = await TokenAsync(new()
        {
            ["grant_type"] = "refresh_token", ["client_id"] = "platform-cli", ["refresh_token"] = tokens.GetProperty("refresh_token").GetString()!,
        });
        await host.Http(refreshed.GetProperty("access_token").GetString()).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        // A device code is good for one sign-in.
        Assert.Equal("invalid_grant", (await TokenAsync(poll, HttpStatusCode.BadRequest)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_denied_or_mistyped_device_code_gives_no_tokens()
    {
        var email = $"dev-{Guid.NewGuid():N}@example.com";
        await host.UserTokenAsync(email, "right-password-1");
        var device = await DeviceCodeAsync();
        var userCode = device.GetProperty("user_code").GetString()!;
        var poll = new Dictionary<string, string> { ["grant_type"] = DeviceGrant, ["client_id"] = "platform-cli", ["device_code"] = device.GetProperty("device_code").GetString()! };

        // Typed by hand on the bare page, one character wrong: refused, and the real code still waits.
        var (form, formHtml, browser) = await Browser.VisitSignedInAsync(host, "/connect/verify", email, "right-password-1");
        Assert.Contains("Enter the code your terminal shows", formHtml);
        var wrong = (userCode[0] == 'A' ? "B" : "A") + userCode[1..];
        var mistyped = await browser.GetAsync("/connect/verify?user_code=" + Uri.EscapeDataString(wrong));
        Assert.Equal(HttpStatusCode.BadRequest, mistyped.StatusCode);
        Assert.Contains("This code is not valid", await mistyped.Content.ReadAsStringAsync());
        Assert.Equal("authorization_pending", (await TokenAsync(poll, HttpStatusCode.BadRequest)).GetProperty("error").GetString());

        var (_, html, _) = await Browser.VisitSignedInAsync(host, "/connect/verify?user_code=" + Uri.EscapeDataString(userCode), email, "right-password-1", browser);
        Assert.Contains(WebUtility.HtmlEncode(email), html);
        var denied = await Browser.DecideDeviceAsync(browser, html, userCode, "deny");
        Assert.Equal("/account/device/denied", denied.Headers.Location!.OriginalString);
        Assert.Equal("access_denied", (await TokenAsync(poll, HttpStatusCode.BadRequest)).GetProperty("error").GetString());
    }
}

[Collection("sqlite")]
public sealed class SqliteOidcTests(SqliteFixture f) : OidcTests(f.Host);

[Collection("postgres")]
public sealed class PostgresOidcTests(PostgresFixture f) : OidcTests(f.Host);
