using System.Net;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Identity;

/// <summary>
/// The end-user verification page of the device authorization grant (RFC 8628 §3.3): a signed-in person types (or
/// follows a link with) the code the CLI printed, sees which client asks, and approves or denies it. OpenIddict checks
/// the user code; approving signs the person's identity into it, so the CLI polling the token endpoint gets tokens.
/// A person who is not signed in goes through the sign-in page first and comes back here.
/// </summary>
public static class DevicePage
{
    public static IEndpointRouteBuilder MapDevicePage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/connect/verify", (Delegate)ShowAsync).ExcludeFromDescription();
        app.MapPost("/connect/verify", (Delegate)DecideAsync).ExcludeFromDescription().DisableAntiforgery();   // validated below, with a page for the failure
        app.MapGet("/account/device/approved", () => LoginPage.Card("Signed in",
            """<h1>You are signed in</h1><p class="sub" data-result="approved">The command line has its tokens. You can close this page and return to your terminal.</p>""")).ExcludeFromDescription();
        app.MapGet("/account/device/denied", () => LoginPage.Card("Refused",
            """<h1>Sign-in refused</h1><p class="sub" data-result="denied">The command line gets no access. You can close this page.</p>""")).ExcludeFromDescription();
        return app;
    }

    private static async Task<IResult> ShowAsync(HttpContext ctx, IAntiforgery antiforgery, UserManager<PlatformUser> users, IOpenIddictApplicationManager applications)
    {
        if (await SignedInAsync(ctx, users) is not { } user) return SignInFirst(ctx);
        var request = ctx.GetOpenIddictServerRequest();
        if (string.IsNullOrEmpty(request?.UserCode)) return Form(ctx, antiforgery, null, null, null);
        var code = await ctx.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
        if (!code.Succeeded || code.Principal?.GetClaim(Claims.ClientId) is not { } clientId)
            return Form(ctx, antiforgery, "This code is not valid, or it expired. Check it against your terminal, or run the sign-in there again.", null, null, 400);
        var client = await applications.FindByClientIdAsync(clientId) is { } found ? await applications.GetDisplayNameAsync(found) ?? clientId : clientId;
        return Form(ctx, antiforgery, null, request.UserCode, (client, user.Email ?? user.Id));
    }

    private static async Task<IResult> DecideAsync(HttpContext ctx, IAntiforgery antiforgery, UserManager<PlatformUser> users)
    {
        if (!await antiforgery.IsRequestValidAsync(ctx))
            return Form(ctx, antiforgery, "The form expired; enter the code again.", null, null, 400);
        if (await SignedInAsync(ctx, users) is not { } user) return SignInFirst(ctx);
        var form = await ctx.Request.ReadFormAsync();
        var code = await ctx.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
        if (!code.Succeeded || string.IsNullOrEmpty(code.Principal?.GetClaim(Claims.ClientId)))
            return Form(ctx, antiforgery, "This code is not valid, or it expired. Check it against your terminal, or run the sign-in there again.", null, null, 400);
        if (form["decision"] != "approve")
            return Results.Forbid(new AuthenticationProperties { RedirectUri = "/account/device/denied" }, [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
        return Results.SignIn(OidcEndpoints.UserPrincipal(user, code.Principal!.GetScopes()), new AuthenticationProperties { RedirectUri = "/account/device/approved" },
            OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static async Task<PlatformUser?> SignedInAsync(HttpContext ctx, UserManager<PlatformUser> users)
    {
        var session = await ctx.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        if (!session.Succeeded) return null;
        var user = await users.GetUserAsync(session.Principal!);
        return user is null || await users.IsLockedOutAsync(user) ? null : user;
    }

    /// <summary>To the sign-in page, and back to this page with the code the person followed (a GET, so a POST's code comes back as a query).</summary>
    private static IResult SignInFirst(HttpContext ctx)
    {
        var userCode = ctx.GetOpenIddictServerRequest()?.UserCode;
        var back = "/connect/verify" + (string.IsNullOrEmpty(userCode) ? "" : QueryString.Create(Parameters.UserCode, userCode).ToString());
        return Results.Challenge(new AuthenticationProperties { RedirectUri = back }, [IdentityConstants.ApplicationScheme]);
    }

    private static IResult Form(HttpContext ctx, IAntiforgery antiforgery, string? error, string? userCode, (string Client, string Person)? asking, int status = 200)
    {
        string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        var errorHtml = error is null ? "" : $"""<div class="error" role="alert">{E(error)}</div>""";
        if (asking is not { } a)
            return LoginPage.Card("Device sign-in", $$"""
                <h1>Sign in a device</h1>
                <p class="sub">Enter the code your terminal shows.</p>
                {{errorHtml}}
                <form method="get" action="/connect/verify">
                  <label for="user_code">Code</label>
                  <input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" required autofocus>
                  <button type="submit">Continue</button>
                </form>
                """, status);
        var tokens = antiforgery.GetAndStoreTokens(ctx);
        return LoginPage.Card("Device sign-in", $$"""
            <h1>Approve {{E(a.Client)}}?</h1>
            <p class="sub">It asks to act as <strong>{{E(a.Person)}}</strong> on this platform, with all your access. Approve only if the code matches your terminal: <code data-user-code>{{E(userCode)}}</code></p>
            <form method="post" action="/connect/verify">
              <input type="hidden" name="{{E(tokens.FormFieldName)}}" value="{{E(tokens.RequestToken)}}">
              <input type="hidden" name="user_code" value="{{E(userCode)}}">
              <button type="submit" name="decision" value="approve">Approve</button>
              <button type="submit" name="decision" value="deny" style="background:#6b6d78">Deny</button>
            </form>
            """, status);
    }
}
