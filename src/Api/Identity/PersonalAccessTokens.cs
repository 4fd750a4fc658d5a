using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Identity;

/// <summary>
/// Personal access tokens: 256 random bits behind a recognisable prefix, stored only as a SHA-256
/// hash (a slow hash buys nothing against 256-bit secrets and would cost on every request).
/// </summary>
public static class TokenSecrets
{
    public const string PatPrefix = "plat_";
    public const string JoinPrefix = "platjoin_";

    public static string NewSecret(string prefix) =>
        prefix + Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    public static string Hash(string token) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    public static bool LooksLikePat(string? value) =>
        value is { Length: > 20 } && value.StartsWith(PatPrefix, StringComparison.Ordinal);

    private static string Base64UrlEncode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>
/// Accepts a personal access token as <c>Authorization: Bearer plat_…</c> or as the password of HTTP
/// Basic (any user name), as git and docker clients send it. Expired or revoked tokens are refused.
/// </summary>
public sealed class PatAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    PlatformDbContext db,
    TimeProvider clock)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "PersonalAccessToken";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = ReadToken(Request.Headers.Authorization.ToString());
        if (token is null)
            return AuthenticateResult.NoResult();

        var pat = await PersonalAccessTokenLookup.FindAsync(db, token, clock, Context.RequestAborted);
        if (pat is null)
            return AuthenticateResult.Fail("The personal access token is unknown, expired or revoked, or its user is locked out.");
        // The caller is resolved here, in the token's query, for CallerFilter too.
        Context.Items[Access.AccessService.CallerItem] = new Access.Caller(pat.UserId, pat.Email, pat.IsPlatformAdmin);

        var identity = new ClaimsIdentity(SchemeName, Claims.Name, Claims.Role);
        identity.AddClaim(new Claim(Claims.Subject, pat.UserId));
        identity.AddClaim(new Claim("pat_id", pat.TokenId.ToString()));
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    /// <summary>A token from Bearer or from Basic's password; null when the header carries none.</summary>
    public static string? ReadToken(string header)
    {
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var value = header[7..].Trim();
            return TokenSecrets.LooksLikePat(value) ? value : null;
        }
        return ReadBasic(header)?.Password;
    }

    /// <summary>User name and password of a Basic header; null when the header is not Basic or not decodable.</summary>
    public static (string User, string Password)? ReadBasic(string header)
    {
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = decoded.IndexOf(':');
            return colon >= 0 ? (decoded[..colon], decoded[(colon + 1)..]) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        return Task.CompletedTask;
    }
}

/// <summary>
/// The one place that decides whether a personal access token is good: known, not revoked, not
/// expired, its user not locked out. Records the last use (at most once a minute per token).
/// Used by the REST API's scheme and by the registry.
/// </summary>
public static class PersonalAccessTokenLookup
{
    public sealed record Found(Guid TokenId, string UserId, string Email, bool IsPlatformAdmin);

    private static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    public static async Task<Found?> FindAsync(PlatformDbContext db, string token, TimeProvider clock, CancellationToken ct)
    {
        var hash = TokenSecrets.Hash(token);
        var now = clock.GetUtcNow();
        var pat = await db.PersonalAccessTokens.AsNoTracking()
            .Where(t => t.Hash == hash)
            .Select(t => new { t.Id, t.UserId, t.ExpiresAt, t.RevokedAt, t.LastUsedAt, t.User!.Email, t.User.IsPlatformAdmin, t.User.LockoutEnd })
            .FirstOrDefaultAsync(ct);
        if (pat is null || pat.RevokedAt is not null || pat.ExpiresAt <= now.UtcDateTime || pat.LockoutEnd > now)
            return null;
        if (pat.LastUsedAt is null || now.UtcDateTime - pat.LastUsedAt > LastUsedResolution)
            await db.PersonalAccessTokens.Where(t => t.Id == pat.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.LastUsedAt, now.UtcDateTime), ct);
        return new Found(pat.Id, pat.UserId, pat.Email ?? "", pat.IsPlatformAdmin);
    }
}
