using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Yarp.ReverseProxy.Forwarder;

namespace Platform.Api.Routing;

/// <summary>
/// Router v1: its own listener on Platform:Ingress:Url (a second Kestrel host in the Api process, so
/// the Api's authentication and middleware never see app traffic). Each request's Host picks an app
/// in the <see cref="RouteTable"/>; YARP's forwarder sends it to the next running instance (round
/// robin), WebSocket upgrades included. Unknown hosts get a 404 page, apps with no running instance a
/// 503 page with Retry-After, an instance that refuses the connection is skipped once for another.
/// </summary>
public sealed partial class Router(RouteTable routes, IOptions<PlatformOptions> options, ILogger<Router> log) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;
    private readonly HttpMessageInvoker _invoker = new(new SocketsHttpHandler
    {
        UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, UseCookies = false,
        EnableMultipleHttp2Connections = true, ActivityHeadersPropagator = null, ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    });

    /// <summary>The router's bound address (useful when Ingress:Url asks for port 0).</summary>
    public Uri? Address { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(options.Value.Ingress.Url);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Services.AddHttpForwarder();
        _app = builder.Build();
        var forwarder = _app.Services.GetRequiredService<IHttpForwarder>();
        var transformer = new ForwardedTransformer();
        var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromMinutes(2) };
        _app.Run(async context =>
        {
            var host = context.Request.Host.Host.TrimEnd('.');
            var route = routes.Find(host);
            if (route is null)
            {
                await PageAsync(context, 404, "No app here", $"No app answers at {host}.");
                return;
            }
            var destination = route.Next();
            if (destination is null)
            {
                context.Response.Headers.RetryAfter = "5";
                await PageAsync(context, 503, "App not running",
                    $"App {route.App} (project {route.Project}, team {route.Team}) has no running instance right now. Try again in a few seconds.");
                return;
            }
            var error = await forwarder.SendAsync(context, destination, _invoker, config, transformer);
            // A refused connection sent nothing: try one other instance before giving up.
            if (error == ForwarderError.Request && !context.Response.HasStarted && route.Destinations.Count > 1
                && (context.Request.ContentLength ?? 0) == 0 && !context.Request.Headers.ContainsKey("Transfer-Encoding"))
            {
                context.Response.Clear();
                error = await forwarder.SendAsync(context, route.Next()!, _invoker, config, transformer);
            }
            if (error != ForwarderError.None)
            {
                LogForwardFailed(log, route.App, route.Project, route.Team, error.ToString());
                if (!context.Response.HasStarted)
                {
                    context.Response.Clear();
                    await PageAsync(context, 502, "Bad gateway", $"An instance of {route.App} did not answer ({error}).");
                }
            }
        });
        await _app.StartAsync(cancellationToken);
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Address = new Uri(bound.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1"));
        LogListening(log, Address.ToString());
    }

    private static Task PageAsync(HttpContext context, int status, string title, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        var t = WebUtility.HtmlEncode(title);
        var m = WebUtility.HtmlEncode(message);
        const string style = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}"
            + "h1{font-size:1.4rem}@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}";
        return context.Response.WriteAsync(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
            + $"<title>{status} {t}</title><style>{style}</style></head>"
            + $"<body><h1>{status} · {t}</h1><p>{m}</p><p><small>Platform router</small></p></body></html>\n");
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
        _invoker.Dispose();
    }

    /// <summary>YARP's defaults plus the original Host and X-Forwarded-For/Proto/Host, as apps behind a router expect.</summary>
    private sealed class ForwardedTransformer : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext context, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken ct)
        {
            await base.TransformRequestAsync(context, proxyRequest, destinationPrefix, ct);
            proxyRequest.Headers.Host = context.Request.Host.Value;
            var remote = context.Connection.RemoteIpAddress?.ToString();
            if (remote is not null)
            {
                var prior = context.Request.Headers["X-Forwarded-For"].ToString();
                proxyRequest.Headers.Remove("X-Forwarded-For");
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For", string.IsNullOrEmpty(prior) ? remote : prior + ", " + remote);
            }
            proxyRequest.Headers.Remove("X-Forwarded-Proto");
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Proto", context.Request.Scheme);
            proxyRequest.Headers.Remove("X-Forwarded-Host");
            proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", context.Request.Host.Value);
        }
    }

    [LoggerMessage(EventId = 51, Level = LogLevel.Information, Message = "Router listening on {Address}")]
    private static partial void LogListening(ILogger logger, string address);

    [LoggerMessage(EventId = 52, Level = LogLevel.Warning, Message = "Forwarding to {App} ({Project}/{Team}) failed: {Error}")]
    private static partial void LogForwardFailed(ILogger logger, string app, string project, string team, string error);
}
