using System.Collections.Immutable;
using System.Security.Claims;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Identity;

/// <summary>The pass-through endpoints of the OIDC server: who gets a token, with which claims.</summary>
public static class OidcEndpoints
{
    public static IEndpointRouteBuilder MapOidc(this IEndpointRouteBuilder app)
    {
        app.MapMethods("/connect/authorize", ["GET", "POST"], (Delegate)AuthorizeAsync).ExcludeFromDescription();
        app.MapPost("/connect/token", (Delegate)TokenAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapMethods("/connect/logout", ["GET", "POST"], (Delegate)LogoutAsync).ExcludeFromDescription().DisableAntiforgery();
        app.MapMethods("/connect/userinfo", ["GET", "POST"], (Delegate)UserInfoAsync).ExcludeFromDescription().DisableAntiforgery();
        return app;
    }

    private static async Task<IResult> AuthorizeAsync(HttpContext ctx, UserManager<PlatformUser> users)
    {
        var request = ctx.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenID Connect request cannot be retrieved.");

        var session = await ctx.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        if (!session.Succeeded || request.HasPromptValue(PromptValues.Login))
        {
            if (request.HasPromptValue(PromptValues.None))
                return Forbid(Errors.LoginRequired, "The user is not signed in.");
            // Back to this same authorize request after the login page.
            var returnUrl = ctx.Request.PathBase + ctx.Request.Path + QueryStringWithoutPrompt(ctx.Request);
            return Results.Challenge(new AuthenticationProperties { RedirectUri = returnUrl }, [IdentityConstants.ApplicationScheme]);
        }

        var user = await users.GetUserAsync(session.Principal!);
        if (user is null || await users.IsLockedOutAsync(user))
            return Results.Challenge(new AuthenticationProperties { RedirectUri = ctx.Request.Path + ctx.Request.QueryString }, [IdentityConstants.ApplicationScheme]);

        // First-party clients only (the Portal, the CLI): consent is implicit.
        return SignIn(UserPrincipal(user, request.GetScopes()));
    }

    private static async Task<IResult> TokenAsync(
        HttpContext ctx, UserManager<PlatformUser> users, SignInManager<PlatformUser> signIn, IOpenIddictApplicationManager applications)
    {
        var request = ctx.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenID Connect request cannot be retrieved.");

        if (request.IsPasswordGrantType())
        {
            var user = request.Username is { Length: > 0 } name ? await users.FindByEmailAsync(name) : null;
            if (user is null)
                return Forbid(Errors.InvalidGrant, "The email or password is wrong.");
            var check = await signIn.CheckPasswordSignInAsync(user, request.Password ?? "", lockoutOnFailure: true);
            if (check.IsLockedOut)
                return Forbid(Errors.InvalidGrant, "The account is locked after repeated failures; try again later.");
            if (!check.Succeeded)
                return Forbid(Errors.InvalidGrant, "The email or password is wrong.");
            return SignIn(UserPrincipal(user, request.GetScopes()));
        }

        if (request.IsAuthorizationCodeGrantType() || request.IsRefreshTokenGrantType() || request.IsDeviceCodeGrantType())
        {
            // OpenIddict has already checked the code (and its PKCE verifier), the refresh token, or the device code
            // (approved by its person on /connect/verify; until then the CLI polling here gets authorization_pending).
            var stored = (await ctx.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme)).Principal;
            var user = stored?.GetClaim(Claims.Subject) is { } id ? await users.FindByIdAsync(id) : null;
            if (user is null || await users.IsLockedOutAsync(user))
                return Forbid(Errors.InvalidGrant, "The user no longer exists or is locked out.");
            return SignIn(UserPrincipal(user, stored!.GetScopes()));
        }

        if (request.IsClientCredentialsGrantType())
        {
            var app = await applications.FindByClientIdAsync(request.ClientId!)
                ?? throw new InvalidOperationException("The client was validated but cannot be found.");
            var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
            identity.SetClaim(Claims.Subject, request.ClientId);
            identity.SetClaim(Claims.Name, await applications.GetDisplayNameAsync(app) ?? request.ClientId);
            identity.SetClaim("client_kind", "machine");
            identity.SetScopes(request.GetScopes());
            identity.SetDestinations(_ => [Destinations.AccessToken]);
            return SignIn(new ClaimsPrincipal(identity));
        }

        return Forbid(Errors.UnsupportedGrantType, "The grant type is not supported.");
    }

    private static async Task<IResult> LogoutAsync(HttpContext ctx)
    {
        await ctx.SignOutAsync(IdentityConstants.ApplicationScheme);
        // OpenIddict validates post_logout_redirect_uri against the client and redirects there.
        return Results.SignOut(new AuthenticationProperties { RedirectUri = "/" }, [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
    }

    private static async Task<IResult> UserInfoAsync(HttpContext ctx, UserManager<PlatformUser> users)
    {
        var principal = (await ctx.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme)).Principal;
        var user = principal?.GetClaim(Claims.Subject) is { } id ? await users.FindByIdAsync(id) : null;
        if (user is null)
            return Results.Challenge(Properties(Errors.InvalidToken, "The token does not belong to a user."),
                [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
        return Results.Ok(new Dictionary<string, object?>
        {
            [Claims.Subject] = user.Id,
            [Claims.Email] = user.Email,
            [Claims.Name] = user.Email,
            ["platform_admin"] = user.IsPlatformAdmin,
        });
    }

    internal static ClaimsPrincipal UserPrincipal(PlatformUser user, ImmutableArray<string> scopes)
    {
        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, user.Id)
            .SetClaim(Claims.Email, user.Email)
            .SetClaim(Claims.Name, user.Email);
        identity.SetScopes(scopes);
        identity.SetDestinations(claim => claim.Type switch
        {
            Claims.Subject => [Destinations.AccessToken, Destinations.IdentityToken],
            Claims.Email or Claims.Name when scopes.Contains(Scopes.Email) || scopes.Contains(Scopes.Profile)
                => [Destinations.AccessToken, Destinations.IdentityToken],
            _ => [Destinations.AccessToken],
        });
        return new ClaimsPrincipal(identity);
    }

    private static IResult SignIn(ClaimsPrincipal principal) =>
        Results.SignIn(principal, null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);

    private static IResult Forbid(string error, string description) =>
        Results.Forbid(Properties(error, description), [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);

    private static AuthenticationProperties Properties(string error, string description) => new(new Dictionary<string, string?>
    {
        [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
        [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
    });

    private static string QueryStringWithoutPrompt(HttpRequest request) =>
        QueryString.Create(request.Query.Where(q => q.Key != Parameters.Prompt)
            .SelectMany(q => q.Value.Select(v => new KeyValuePair<string, string?>(q.Key, v)))).ToString();
}
