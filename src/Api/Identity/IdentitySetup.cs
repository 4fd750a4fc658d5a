using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using OpenIddict.Validation.AspNetCore;
using Platform.Api.Infrastructure;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Identity;

public static class IdentitySetup
{
    /// <summary>The default scheme of the REST API: picks personal access tokens or OIDC tokens by the header.</summary>
    public const string ApiScheme = "Platform";

    public const string PlatformScope = "platform";

    public static IHostApplicationBuilder AddPlatformIdentity(this IHostApplicationBuilder builder, PlatformOptions options)
    {
        var services = builder.Services;
        services.AddDataProtection()
            .PersistKeysToFileSystem(new DirectoryInfo(DataLayout.Of(options).DataProtectionKeys))
            .SetApplicationName("platform");

        services.AddIdentity<PlatformUser, IdentityRole>(o =>
            {
                // NIST SP 800-63B: length over composition rules.
                o.Password.RequiredLength = 10;
                o.Password.RequiredUniqueChars = 4;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Lockout.MaxFailedAccessAttempts = 5;
                o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
                o.Lockout.AllowedForNewUsers = true;
                o.User.RequireUniqueEmail = true;
                o.ClaimsIdentity.UserIdClaimType = Claims.Subject;
                o.ClaimsIdentity.UserNameClaimType = Claims.Name;
                o.ClaimsIdentity.RoleClaimType = Claims.Role;
                o.ClaimsIdentity.EmailClaimType = Claims.Email;
            })
            .AddEntityFrameworkStores<PlatformDbContext>()
            .AddDefaultTokenProviders();

        services.ConfigureApplicationCookie(o =>
        {
            o.LoginPath = "/account/login";
            o.LogoutPath = "/connect/logout";
            o.Cookie.Name = "platform.session";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
        });

        services.AddOpenIddict()
            .AddCore(o => o.UseEntityFrameworkCore().UseDbContext<PlatformDbContext>())
            .AddServer(o =>
            {
                o.SetAuthorizationEndpointUris("connect/authorize")
                    .SetTokenEndpointUris("connect/token")
                    .SetEndSessionEndpointUris("connect/logout")
                    .SetUserInfoEndpointUris("connect/userinfo")
                    .SetRevocationEndpointUris("connect/revoke")
                    .SetIntrospectionEndpointUris("connect/introspect")
                    // RFC 8628: the CLI asks for a device code, the person approves its user code at /connect/verify.
                    .SetDeviceAuthorizationEndpointUris("connect/device")
                    .SetEndUserVerificationEndpointUris("connect/verify");
                if (options.PublicUrl is { } publicUrl)
                    o.SetIssuer(new Uri(publicUrl));
                o.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange()
                    .AllowRefreshTokenFlow()
                    .AllowPasswordFlow()
                    .AllowClientCredentialsFlow()
                    .AllowDeviceAuthorizationFlow();
                o.SetDeviceCodeLifetime(TimeSpan.FromMinutes(10)).SetUserCodeLifetime(TimeSpan.FromMinutes(10));
                o.RegisterScopes(Scopes.OpenId, Scopes.Profile, Scopes.Email, Scopes.OfflineAccess, PlatformScope);
                o.AddSigningKey(SigningKeys.LoadOrCreate(DataLayout.Of(options).Keys, "oidc-signing"));
                o.AddEncryptionKey(SigningKeys.LoadOrCreate(DataLayout.Of(options).Keys, "oidc-encryption"));
                o.SetAccessTokenLifetime(options.AccessTokenLifetime);
                o.SetRefreshTokenLifetime(TimeSpan.FromDays(14));
                o.UseAspNetCore()
                    .EnableAuthorizationEndpointPassthrough()
                    .EnableTokenEndpointPassthrough()
                    .EnableEndSessionEndpointPassthrough()
                    .EnableUserInfoEndpointPassthrough()
                    .EnableEndUserVerificationEndpointPassthrough()
                    .EnableStatusCodePagesIntegration()
                    // TLS terminates at the load balancer in front of the Api (docs/operations.md).
                    .DisableTransportSecurityRequirement();
            })
            .AddValidation(o =>
            {
                o.UseLocalServer();
                o.UseAspNetCore();
                // Revoking a user's authorisation (sign-out everywhere, lock-out) also stops their access tokens.
                o.EnableAuthorizationEntryValidation();
            });

        services.AddAuthentication(o =>
            {
                o.DefaultScheme = ApiScheme;
                o.DefaultAuthenticateScheme = ApiScheme;
                o.DefaultChallengeScheme = ApiScheme;
                o.DefaultForbidScheme = ApiScheme;
            })
            .AddPolicyScheme(ApiScheme, "Personal access token or OIDC bearer token", o =>
            {
                o.ForwardDefaultSelector = ctx =>
                    PatAuthenticationHandler.ReadToken(ctx.Request.Headers.Authorization.ToString()) is not null
                        ? PatAuthenticationHandler.SchemeName
                        : OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme;
            })
            .AddScheme<AuthenticationSchemeOptions, PatAuthenticationHandler>(PatAuthenticationHandler.SchemeName, null);

        services.AddAuthorization(o =>
        {
            o.FallbackPolicy = null;
            o.AddPolicy(ApiScheme, p => p.AddAuthenticationSchemes(ApiScheme).RequireAuthenticatedUser());
        });
        return builder;
    }
}
