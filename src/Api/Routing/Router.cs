using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Yarp.ReverseProxy.Forwarder;

namespace Platform.Api.Routing;

/// <summary>
/// The router: its own listeners on Platform:Ingress:Url (HTTP) and Platform:Ingress:HttpsUrl (HTTPS, HTTP/2 and
/// HTTP/1.1, the certificate picked per host from the SNI name by <see cref="TlsCertificates"/>), a second Kestrel
/// host in the Api process, so the Api's authentication and middleware never see app traffic. Each request's Host
/// picks an app in the <see cref="RouteTable"/>; YARP's forwarder sends it to the next running instance (round
/// robin), WebSocket upgrades included. Plain HTTP to a host with a certificate is redirected to HTTPS (unless its
/// app opts out); HTTPS answers carry HSTS when the app asks. Unknown hosts get a 404 page, apps with no running
/// instance a 503 page with Retry-After, an instance that refuses the connection is skipped once for another.
/// </summary>
public sealed partial class Router(RouteTable routes, TlsCertificates tls, RequestStats stats, IServiceScopeFactory scopes, IOptions<PlatformOptions> options, ILogger<Router> log)
    : IHostedService, IAsyncDisposable
{
    private static readonly Meter Meter = new("Platform.Api");
    private static readonly Counter<long> Requests = Meter.CreateCounter<long>("platform.router.requests", description: "Requests the router answered for an app, by app and status class (2xx…5xx)");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>("platform.router.request.duration", unit: "s",
        description: "Time from a request's arrival to its answer's end, by app", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

    private static readonly KeyValuePair<string, object?>[] StatusClasses = new[] { "1xx", "2xx", "3xx", "4xx", "5xx" }.Select(c => new KeyValuePair<string, object?>("code", c)).ToArray();

    private static KeyValuePair<string, object?> StatusClass(int status) => StatusClasses[Math.Clamp(status / 100 - 1, 0, 4)];

    private WebApplication? _app;
    private readonly HttpMessageInvoker _invoker = new(new SocketsHttpHandler
    {
        UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, UseCookies = false,
        EnableMultipleHttp2Connections = true, ActivityHeadersPropagator = null, ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    });

    /// <summary>The router's bound address (useful when Ingress:Url asks for port 0).</summary>
    public Uri? Address { get; private set; }

    /// <summary>The HTTPS listener's bound address, or null without Ingress:HttpsUrl.</summary>
    public Uri? HttpsAddress { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // ASP.NET's own per-request metrics would record every app request a second time beside the router's (and cost
        // as much): this host's framework meters go unobserved; platform.router.* is what /metrics shows of app traffic.
        builder.Services.AddSingleton<IMeterFactory, UnobservedMeters>();
        var ingress = options.Value.Ingress;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = ingress.MaxRequestBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = ingress.MaxRequestHeaderBytes;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(30);
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(75);
            Listen(k, ingress.Url, _ => { });
            if (ingress.HttpsUrl is { } https)
                Listen(k, https, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    listen.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        // SNI picks the certificate; a name the platform holds none for ends the handshake (no default
                        // certificate that would name another tenant's host).
                        OnConnection = context => ValueTask.FromResult(new SslServerAuthenticationOptions
                        {
                            ServerCertificateContext = tls.Find(context.ClientHelloInfo.ServerName)
                                ?? throw new AuthenticationException($"No certificate for '{context.ClientHelloInfo.ServerName}'."),
                            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
                        }),
                        HandshakeTimeout = TimeSpan.FromSeconds(10),
                    });
                });
        });
        builder.Services.AddHttpForwarder();
        _app = builder.Build();
        var forwarder = _app.Services.GetRequiredService<IHttpForwarder>();
        var transformer = new ForwardedTransformer();
        var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(ingress.UpstreamTimeoutSeconds) };
        _app.Run(async context =>
        {
            var started = Stopwatch.GetTimestamp();
            // One id per request, the client's own when it sent a sane one: to the app (X-Request-Id), back to the client, in the access log.
            var requestId = context.Request.Headers["X-Request-Id"].ToString() is { Length: > 0 and <= 128 } given && given.All(c => c is > ' ' and < (char)127)
                ? given : Guid.NewGuid().ToString("N");
            context.Request.Headers["X-Request-Id"] = requestId;
            context.Response.Headers["X-Request-Id"] = requestId;
            RouteEntry? route = null;
            try
            {
                route = await HandleAsync(context);
            }
            finally
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                var status = context.Response.StatusCode;
                if (route is not null)
                {
                    Requests.Add(1, route.Tag, StatusClass(status));
                    Duration.Record(elapsed.TotalSeconds, route.Tag);
                    stats.Record(route.AppId, status, elapsed);
                }
                if (ingress.AccessLog)
                    LogAccess(log, context.Request.Method, context.Request.Host.Value ?? "", context.Request.Path.Value ?? "", status, elapsed.TotalMilliseconds,
                        route?.Key ?? "-", context.Request.Protocol, context.Connection.RemoteIpAddress?.ToString() ?? "-", requestId);
            }
        });

        Task TooLargeAsync(HttpContext context) =>
            PageAsync(context, 413, "Request too large", $"The request body is larger than the {ingress.MaxRequestBodyBytes} bytes the router passes on.");

        async Task<RouteEntry?> HandleAsync(HttpContext context)
        {
            var host = context.Request.Host.Host;
            if (host.EndsWith('.') || host.Any(char.IsAsciiLetterUpper)) host = host.TrimEnd('.').ToLowerInvariant();
            var route = routes.Find(host);
            if (route is null)
            {
                await PageAsync(context, 404, "No app here", $"No app answers at {host}.");
                return null;
            }
            // ACME http-01 (RFC 8555 §8.3): the key authorization of a challenge the platform is answering for this host,
            // from the database, so whichever replica the CA reaches answers it; anything else is the app's.
            if (context.Request.Path.StartsWithSegments("/.well-known/acme-challenge", out var rest) && await ChallengeAsync(host, rest.Value) is { } keyAuthorization)
            {
                context.Response.ContentType = "application/octet-stream";
                await context.Response.WriteAsync(keyAuthorization);
                return route;
            }
            if (context.Request.IsHttps)
            {
                if (route.Hsts) context.Response.Headers.StrictTransportSecurity = "max-age=31536000";
            }
            else if (route.HttpsRedirect && HttpsAddress is { } secure && tls.Has(host))
            {
                context.Response.StatusCode = StatusCodes.Status308PermanentRedirect;
                context.Response.Headers.Location = $"https://{host}{(secure.Port == 443 ? "" : ":" + secure.Port)}{context.Request.PathBase}{context.Request.Path}{context.Request.QueryString}";
                return route;
            }
            if (context.Request.ContentLength > ingress.MaxRequestBodyBytes)
            {
                await TooLargeAsync(context);
                return route;
            }
            var destination = route.Next();
            if (destination is null)
            {
                context.Response.Headers.RetryAfter = "5";
                await PageAsync(context, 503, "App not running",
                    $"App {route.App} (project {route.Project}, team {route.Team}) has no running instance right now. Try again in a few seconds.");
                return route;
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
                var cause = context.Features.Get<IForwarderErrorFeature>()?.Exception;
                if (cause is Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: 413 } && !context.Response.HasStarted)
                {
                    // A chunked body ran past the limit on its way through.
                    context.Response.Clear();
                    await TooLargeAsync(context);
                    return route;
                }
                LogForwardFailed(log, route.App, route.Project, route.Team, error.ToString());
                if (!context.Response.HasStarted)
                {
                    context.Response.Clear();
                    var (status, title) = error == ForwarderError.RequestTimedOut ? (504, "Gateway timeout") : (502, "Bad gateway");
                    await PageAsync(context, status, title, $"An instance of {route.App} did not answer ({error}).");
                }
            }
            return route;
        }
        await _app.StartAsync(cancellationToken);
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1"))).ToList();
        Address = bound.First(a => a.Scheme == "http");
        HttpsAddress = bound.FirstOrDefault(a => a.Scheme == "https");
        LogListening(log, string.Join(", ", bound));
    }

    /// <summary>Listens where <paramref name="url"/> says: an IP address, <c>localhost</c>, or any address (<c>+</c>, <c>*</c>, <c>0.0.0.0</c>).</summary>
    private static void Listen(KestrelServerOptions k, string url, Action<ListenOptions> configure)
    {
        var authority = url[(url.IndexOf("://", StringComparison.Ordinal) + 3)..].TrimEnd('/');
        var colon = authority.LastIndexOf(':');
        var (host, port) = colon > authority.LastIndexOf(']') && int.TryParse(authority[(colon + 1)..], out var p)
            ? (authority[..colon], p)
            : (authority, url.StartsWith("https", StringComparison.OrdinalIgnoreCase) ? 443 : 80);
        host = host.Trim('[', ']');
        if (host is "+" or "*") k.ListenAnyIP(port, configure);
        else if (host == "localhost") k.ListenLocalhost(port, configure);
        else if (IPAddress.TryParse(host, out var ip)) k.Listen(ip, port, configure);
        else throw new InvalidOperationException($"The router cannot listen on {url}: give an IP address, localhost or + as its host.");
    }

    private async Task<string?> ChallengeAsync(string host, string? rest)
    {
        var token = rest?.TrimStart('/');
        if (token is not { Length: > 0 and <= 256 } || !token.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')) return null;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<Platform.Data.PlatformDbContext>();
        return await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.FirstOrDefaultAsync(
            db.AcmeChallenges.Where(c => c.Token == token && c.Host == host).Select(c => c.KeyAuthorization));
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

    /// <summary>Meters under a name no listener subscribes to (the router host's framework meters).</summary>
    private sealed class UnobservedMeters : IMeterFactory
    {
        private readonly List<Meter> _meters = [];
        public Meter Create(MeterOptions options)
        {
            var meter = new Meter("Platform.Router.Unobserved." + options.Name, options.Version);
            lock (_meters) _meters.Add(meter);
            return meter;
        }
        public void Dispose()
        {
            lock (_meters) foreach (var m in _meters) m.Dispose();
        }
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

    /// <summary>The access log: one structured line per request (JSON with the Api's default console formatter).</summary>
    [LoggerMessage(EventId = 54, Level = LogLevel.Information, Message = "{Method} {Host}{Path} {Status} {DurationMs:F1} ms app={App} {Protocol} client={Client} id={RequestId}")]
    private static partial void LogAccess(ILogger logger, string method, string host, string path, int status, double durationMs, string app, string protocol, string client, string requestId);

    [LoggerMessage(EventId = 51, Level = LogLevel.Information, Message = "Router listening on {Address}")]
    private static partial void LogListening(ILogger logger, string address);

    [LoggerMessage(EventId = 52, Level = LogLevel.Warning, Message = "Forwarding to {App} ({Project}/{Team}) failed: {Error}")]
    private static partial void LogForwardFailed(ILogger logger, string app, string project, string team, string error);
}
