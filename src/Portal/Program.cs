using System.Net;

// The Portal host. At this stage it serves a landing page pointing at the Api's sign-in; the Blazor
// (MudBlazor) Portal signing in through OIDC as client `platform-portal` arrives with the Portal issue.
var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
var apiUrl = app.Configuration["Portal:ApiUrl"] ?? "http://localhost:5080";

app.MapGet("/healthz", () => "Healthy");
app.MapGet("/", () => Results.Content($$"""
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Platform</title>
    <style>body{font:16px/1.5 system-ui,sans-serif;max-width:640px;margin:10vh auto;padding:0 16px}a{color:#5b5bd6}</style></head>
    <body><h1>Platform</h1>
    <p>The control plane answers at <a href="{{WebUtility.HtmlEncode(apiUrl)}}/openapi/v1.json">{{WebUtility.HtmlEncode(apiUrl)}}</a>.</p>
    <p>Sign in: <a href="{{WebUtility.HtmlEncode(apiUrl)}}/account/login">{{WebUtility.HtmlEncode(apiUrl)}}/account/login</a></p>
    </body></html>
    """, "text/html; charset=utf-8"));
app.Run();
