using System.Net;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Platform.Data;

namespace Platform.Api.Identity;

/// <summary>
/// The sign-in page of the OIDC server (code + PKCE lands here). A plain server-rendered form with an
/// antiforgery token; errors are shown on the page; only local return URLs are followed.
/// </summary>
public static class LoginPage
{
    public sealed record LoginForm(string? Email, string? Password, string? ReturnUrl);

    public static IEndpointRouteBuilder MapLoginPage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/account/login", (HttpContext ctx, IAntiforgery antiforgery, string? returnUrl) =>
            Page(ctx, antiforgery, null, null, returnUrl)).ExcludeFromDescription();

        app.MapPost("/account/login", async (
            HttpContext ctx, IAntiforgery antiforgery, [FromForm] LoginForm form,
            UserManager<PlatformUser> users, SignInManager<PlatformUser> signIn) =>
        {
            var returnUrl = IsLocal(form.ReturnUrl) ? form.ReturnUrl! : "/";
            if (string.IsNullOrWhiteSpace(form.Email) || string.IsNullOrEmpty(form.Password))
                return Page(ctx, antiforgery, "Enter your email and password.", form.Email, returnUrl, 400);

            var user = await users.FindByEmailAsync(form.Email.Trim());
            if (user is null)
                return Page(ctx, antiforgery, "The email or password is wrong.", form.Email, returnUrl, 400);
            var result = await signIn.PasswordSignInAsync(user, form.Password, isPersistent: false, lockoutOnFailure: true);
            if (result.IsLockedOut)
                return Page(ctx, antiforgery, "This account is locked after repeated failures. Try again in 15 minutes.", form.Email, returnUrl, 400);
            if (!result.Succeeded)
                return Page(ctx, antiforgery, "The email or password is wrong.", form.Email, returnUrl, 400);
            return Results.LocalRedirect(returnUrl);
        }).ExcludeFromDescription();
        return app;
    }

    // ASP.NET's own check (it also refuses control characters, which LocalRedirect would throw on).
    private static bool IsLocal(string? url) => Microsoft.AspNetCore.Http.HttpResults.RedirectHttpResult.IsLocalUrl(url);

    private static IResult Page(HttpContext ctx, IAntiforgery antiforgery, string? error, string? email, string? returnUrl, int status = 200)
    {
        var tokens = antiforgery.GetAndStoreTokens(ctx);
        string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        var errorHtml = error is null ? "" : $"""<div class="error" role="alert">{E(error)}</div>""";
        var inner = $$"""
            <h1>Sign in to Platform</h1>
            <p class="sub">Use your platform account.</p>
            {{errorHtml}}
            <form method="post" action="/account/login">
              <input type="hidden" name="{{E(tokens.FormFieldName)}}" value="{{E(tokens.RequestToken)}}">
              <input type="hidden" name="returnUrl" value="{{E(returnUrl)}}">
              <label for="email">Email</label>
              <input id="email" name="email" type="email" autocomplete="username" required autofocus value="{{E(email)}}">
              <label for="password">Password</label>
              <input id="password" name="password" type="password" autocomplete="current-password" required>
              <button type="submit">Sign in</button>
            </form>
            """;
        return Card("Sign in", inner, status);
    }

    /// <summary>A page of the sign-in pages' look: <paramref name="inner"/> (trusted HTML, values encoded by the caller) in a card.</summary>
    internal static IResult Card(string title, string inner, int status = 200)
    {
        var html = $$"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
              <meta charset="utf-8">
              <meta name="viewport" content="width=device-width, initial-scale=1">
              <title>{{WebUtility.HtmlEncode(title)}} · Platform</title>
              <style>
                :root { color-scheme: light dark; --accent: #5b5bd6; }
                * { box-sizing: border-box; }
                body { margin: 0; min-height: 100vh; display: grid; place-items: center;
                       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
                       background: linear-gradient(135deg, #eef0ff, #f8f9fb); color: #1c1d21; }
                @media (prefers-color-scheme: dark) { body { background: #16171b; color: #e8e8ec; } .card { background: #1f2126 !important; } input { background: #16171b; color: inherit; } }
                .card { width: min(92vw, 380px); background: #fff; border-radius: 14px; padding: 32px;
                        box-shadow: 0 10px 30px rgba(20, 20, 60, .12); }
                h1 { margin: 0 0 4px; font-size: 1.4rem; }
                p.sub { margin: 0 0 24px; opacity: .7; }
                label { display: block; font-weight: 600; margin: 14px 0 6px; font-size: .9rem; }
                input { width: 100%; padding: 10px 12px; border: 1px solid #c9cbd4; border-radius: 8px; font-size: 1rem; }
                input:focus { outline: 2px solid var(--accent); border-color: transparent; }
                button { width: 100%; margin-top: 22px; padding: 11px; border: 0; border-radius: 8px;
                         background: var(--accent); color: #fff; font-size: 1rem; font-weight: 600; cursor: pointer; }
                button:focus-visible { outline: 3px solid #a5a5f0; }
                .error { background: #fdecec; color: #a11; border: 1px solid #f3b9b9; padding: 10px 12px; border-radius: 8px; }
              </style>
            </head>
            <body>
              <main class="card">
              {{inner}}
              </main>
            </body>
            </html>
            """;
        return new FramelessPage(html, status);
    }

    /// <summary>
    /// The page, never inside a frame (X-Frame-Options and CSP frame-ancestors): an app on the apps domain, same site as
    /// the Api, must not frame the sign-in or the device approval page and trick a click on Approve.
    /// </summary>
    private sealed class FramelessPage(string html, int status) : IResult
    {
        public Task ExecuteAsync(HttpContext context)
        {
            context.Response.Headers.XFrameOptions = "DENY";
            context.Response.Headers.ContentSecurityPolicy = "frame-ancestors 'none'";
            context.Response.Headers.CacheControl = "no-store";
            return Results.Content(html, "text/html; charset=utf-8", statusCode: status).ExecuteAsync(context);
        }
    }
}
