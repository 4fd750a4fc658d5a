using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using MudBlazor.Services;
using Platform.Portal.Api;
using Platform.Portal.Components;

// The Portal: a Blazor Web App (interactive server) with MudBlazor. People sign in through the Api's
// OpenID Connect server (code + PKCE as the public client `platform-portal`); the Portal keeps their
// tokens in its encrypted auth cookie, refreshes the access token before it expires, and calls the
// Api's REST API with it — it never touches the database.
var builder = WebApplication.CreateBuilder(args);
// Static web assets (MudBlazor's CSS and JS, blazor.web.js) straight from the build output, as
// scripts/run.sh runs it, whatever the environment.
builder.WebHost.UseStaticWebAssets();
var apiUrl = (builder.Configuration["Portal:ApiUrl"] ?? "http://localhost:5080").TrimEnd('/');
var dataDir = builder.Configuration["Portal:DataDir"];
if (!string.IsNullOrEmpty(dataDir))
{
    // The key ring signs the Portal's cookies: the owner's alone (the data folder may be shared with the Api's).
    var keys = Directory.CreateDirectory(Path.Combine(dataDir, "portal-keys"));
    if (OperatingSystem.IsLinux()) File.SetUnixFileMode(keys.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    builder.Services.AddDataProtection().PersistKeysToFileSystem(keys);
}

builder.Services.AddRazorComponents().AddInteractiveServerComponents();
builder.Services.AddMudServices();
builder.Services.AddHttpContextAccessor();
// Token refresh and the pages' refresh timers read the clock through it, so tests can move time.
builder.Services.TryAddSingleton(TimeProvider.System);
builder.Services.AddTransient<AccessTokenHandler>();
builder.Services.AddHttpClient<IPlatformApi, PlatformApi>(c => c.BaseAddress = new Uri(apiUrl + "/")).AddHttpMessageHandler<AccessTokenHandler>();
builder.Services.AddHttpClient("oidc");
builder.Services.AddCascadingAuthenticationState();

builder.Services.AddAuthentication(o =>
    {
        o.DefaultScheme = CookieAuthenticationDefaults.AuthenticationScheme;
        o.DefaultChallengeScheme = OpenIdConnectDefaults.AuthenticationScheme;
    })
    .AddCookie(o =>
    {
        o.Cookie.Name = "platform.portal";
        o.Cookie.SameSite = SameSiteMode.Lax;
        o.SlidingExpiration = true;
        o.Events.OnValidatePrincipal = RefreshIfExpiring;
    })
    .AddOpenIdConnect(o =>
    {
        o.Authority = apiUrl;
        o.RequireHttpsMetadata = !apiUrl.StartsWith("http://", StringComparison.Ordinal);
        o.ClientId = "platform-portal";
        o.ResponseType = OpenIdConnectResponseType.Code;
        o.UsePkce = true;
        o.SaveTokens = true;
        o.MapInboundClaims = false;
        o.GetClaimsFromUserInfoEndpoint = false;
        o.Scope.Clear();
        foreach (var s in new[] { "openid", "profile", "email", "offline_access", "platform" }) o.Scope.Add(s);
        o.TokenValidationParameters.NameClaimType = "email";
        o.SignedOutRedirectUri = "/";
    });
builder.Services.AddAuthorization();

var app = builder.Build();
app.UseExceptionHandler("/error", createScopeForErrors: true);
app.MapStaticAssets();
app.UseAuthentication();
app.UseAuthorization();
app.UseAntiforgery();

app.MapGet("/healthz", () => "Healthy").AllowAnonymous();
app.MapGet("/signin", (string? returnUrl) => Results.Challenge(new AuthenticationProperties { RedirectUri = LocalOnly(returnUrl) },
    [OpenIdConnectDefaults.AuthenticationScheme]));
app.MapPost("/signout", () => Results.SignOut(new AuthenticationProperties { RedirectUri = "/" },
    [CookieAuthenticationDefaults.AuthenticationScheme, OpenIdConnectDefaults.AuthenticationScheme])).RequireAuthorization();
app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
app.Run();

static string LocalOnly(string? url) => url is { Length: > 0 } && url.StartsWith('/') && !url.StartsWith("//", StringComparison.Ordinal) ? url : "/";

// Silent refresh: when the access token has less than two minutes left, the refresh token buys a new
// one before the request goes on; a refused refresh signs the person out (their session ended at the Api).
static async Task RefreshIfExpiring(CookieValidatePrincipalContext context)
{
    var services = context.HttpContext.RequestServices;
    var clock = services.GetRequiredService<TimeProvider>();
    var expiresAt = context.Properties.GetTokenValue("expires_at");
    var refresh = context.Properties.GetTokenValue("refresh_token");
    if (expiresAt is null || refresh is null
        || DateTimeOffset.Parse(expiresAt, CultureInfo.InvariantCulture) - clock.GetUtcNow() > TimeSpan.FromMinutes(2))
        return;
    var oidc = services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<OpenIdConnectOptions>>().Get(OpenIdConnectDefaults.AuthenticationScheme);
    var configuration = await oidc.ConfigurationManager!.GetConfigurationAsync(context.HttpContext.RequestAborted);
    using var response = await services.GetRequiredService<IHttpClientFactory>().CreateClient("oidc").PostAsync(configuration.TokenEndpoint,
        new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["client_id"] = oidc.ClientId!, ["refresh_token"] = refresh,
        }), context.HttpContext.RequestAborted);
    if (!response.IsSuccessStatusCode)
    {
        context.RejectPrincipal();
        await context.HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
        return;
    }
    using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(context.HttpContext.RequestAborted));
    var root = json.RootElement;
    context.Properties.UpdateTokenValue("access_token", root.GetProperty("access_token").GetString()!);
    if (root.TryGetProperty("refresh_token", out var r)) context.Properties.UpdateTokenValue("refresh_token", r.GetString()!);
    context.Properties.UpdateTokenValue("expires_at",
        clock.GetUtcNow().AddSeconds(root.GetProperty("expires_in").GetInt32()).ToString("o", CultureInfo.InvariantCulture));
    context.ShouldRenew = true;
    services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.Portal.Tokens")
        .LogInformation("Refreshed the access token of {User}", context.Principal?.Identity?.Name);
}
