using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using Platform.Api.Infrastructure;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Identity;

/// <summary>
/// Start-up seeding: the first-party OIDC clients and the bootstrap admin. Idempotent, and safe when
/// several replicas start at once (a lost race on a unique key is taken as "already done").
/// </summary>
public static partial class Bootstrap
{
    public const string CliClientId = "platform-cli";
    public const string PortalClientId = "platform-portal";

    public static async Task RunAsync(IServiceProvider root, CancellationToken ct)
    {
        await using var scope = root.CreateAsyncScope();
        var services = scope.ServiceProvider;
        var options = services.GetRequiredService<IOptions<PlatformOptions>>().Value;
        var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.Bootstrap");
        await SeedClientsAsync(services.GetRequiredService<IOpenIddictApplicationManager>(), options, ct);
        await SeedAdminAsync(services, options, log, ct);
    }

    private static async Task SeedClientsAsync(IOpenIddictApplicationManager apps, PlatformOptions options, CancellationToken ct)
    {
        var cli = new OpenIddictApplicationDescriptor
        {
            ClientId = CliClientId,
            ClientType = ClientTypes.Public,
            DisplayName = "Platform CLI",
            Permissions =
            {
                Permissions.Endpoints.Token, Permissions.Endpoints.Revocation, Permissions.Endpoints.DeviceAuthorization,
                Permissions.GrantTypes.Password, Permissions.GrantTypes.RefreshToken, Permissions.GrantTypes.DeviceCode,
                Permissions.Scopes.Email, Permissions.Scopes.Profile, Permissions.Prefixes.Scope + IdentitySetup.PlatformScope,
            },
        };
        var portalUrl = options.Portal.Url.TrimEnd('/');
        var portal = new OpenIddictApplicationDescriptor
        {
            ClientId = PortalClientId,
            ClientType = ClientTypes.Public,
            DisplayName = "Platform Portal",
            RedirectUris = { new Uri(portalUrl + "/signin-oidc") },
            PostLogoutRedirectUris = { new Uri(portalUrl + "/signout-callback-oidc") },
            Permissions =
            {
                Permissions.Endpoints.Authorization, Permissions.Endpoints.Token, Permissions.Endpoints.EndSession,
                Permissions.Endpoints.Revocation,
                Permissions.GrantTypes.AuthorizationCode, Permissions.GrantTypes.RefreshToken,
                Permissions.ResponseTypes.Code,
                Permissions.Scopes.Email, Permissions.Scopes.Profile, Permissions.Prefixes.Scope + IdentitySetup.PlatformScope,
            },
            Requirements = { Requirements.Features.ProofKeyForCodeExchange },
        };
        foreach (var descriptor in new[] { cli, portal })
        {
            var existing = await apps.FindByClientIdAsync(descriptor.ClientId!, ct);
            try
            {
                if (existing is null) await apps.CreateAsync(descriptor, ct);
                else await apps.UpdateAsync(existing, descriptor, ct);   // the Portal URL may have changed
            }
            catch (DbUpdateException) when (existing is null)
            {
                // Another replica created it first.
            }
        }
    }

    private static async Task SeedAdminAsync(IServiceProvider services, PlatformOptions options, ILogger log, CancellationToken ct)
    {
        var users = services.GetRequiredService<UserManager<PlatformUser>>();
        var db = services.GetRequiredService<PlatformDbContext>();
        var clock = services.GetRequiredService<TimeProvider>();
        var boot = options.Bootstrap;
        if (await db.Users.AnyAsync(ct))
            return;
        if (string.IsNullOrWhiteSpace(boot.AdminEmail))
        {
            LogNoAdmin(log);
            return;
        }
        var admin = new PlatformUser
        {
            UserName = boot.AdminEmail, Email = boot.AdminEmail, EmailConfirmed = true,
            IsPlatformAdmin = true, CreatedAt = clock.GetUtcNow().UtcDateTime,
        };
        var created = await users.CreateAsync(admin, boot.AdminPassword!);
        if (!created.Succeeded)
        {
            if (created.Errors.Any(e => e.Code is "DuplicateUserName" or "DuplicateEmail"))
                return;   // another replica won the race
            throw new InvalidOperationException("The bootstrap admin cannot be created: " +
                string.Join(" ", created.Errors.Select(e => e.Description)));
        }
        if (boot.AdminToken is { } token)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            db.PersonalAccessTokens.Add(new PersonalAccessToken
            {
                UserId = admin.Id, Name = "bootstrap", Prefix = token[..Math.Min(10, token.Length)],
                Hash = TokenSecrets.Hash(token), CreatedAt = now, ExpiresAt = now.AddYears(10),
            });
            await db.SaveChangesAsync(ct);
        }
        LogAdminCreated(log, boot.AdminEmail);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Created the bootstrap platform admin {Email}")]
    private static partial void LogAdminCreated(ILogger logger, string email);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "No user exists and Platform:Bootstrap:AdminEmail is not set: nobody can sign in")]
    private static partial void LogNoAdmin(ILogger logger);
}
