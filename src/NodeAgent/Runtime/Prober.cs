using System.Net;
using System.Net.Sockets;
using Platform.Contracts;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Probes as the agent runs them against an instance's published port (the way the router reaches it): a TCP
/// connection, or an HTTP GET that reads the status line and headers only (the tenant's server chooses the body, so
/// it is never read; redirects are not followed). The caller's token carries the probe's timeout.
/// </summary>
public static class Prober
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        UseProxy = false, AllowAutoRedirect = false, UseCookies = false, MaxResponseHeadersLength = 64,
        PooledConnectionLifetime = TimeSpan.Zero,   // a new connection each time: a probe asks whether it accepts one
        ConnectTimeout = TimeSpan.FromSeconds(60),
    }) { Timeout = Timeout.InfiniteTimeSpan };

    public static async Task<ProbeResult> ProbeAsync(IPAddress address, int hostPort, int appPort, ProbeSpec probe, CancellationToken ct)
    {
        try
        {
            if (probe.Type == ProbeTypes.Http)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{address}:{hostPort}{probe.Path ?? "/"}");
                request.Headers.Host = "localhost";
                request.Headers.UserAgent.ParseAdd("platform-probe/1");
                request.Headers.ConnectionClose = true;
                using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                var status = (int)response.StatusCode;
                return status >= probe.StatusMin && status <= probe.StatusMax
                    ? new ProbeResult(true, $"HTTP {status} on {probe.Path}")
                    : new ProbeResult(false, $"HTTP {status} on {probe.Path} (expected {probe.StatusMin}–{probe.StatusMax})");
            }
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(address, hostPort, ct);
            return new ProbeResult(true, $"connected on :{appPort}");
        }
        catch (SocketException e)
        {
            return new ProbeResult(false, $"{Words(e.SocketErrorCode)} on :{appPort}");
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException s)
        {
            return new ProbeResult(false, $"{Words(s.SocketErrorCode)} on :{appPort}");
        }
        catch (HttpRequestException e)
        {
            return new ProbeResult(false, $"{(e.HttpRequestError == HttpRequestError.ResponseEnded ? "connection closed without an answer" : "no HTTP answer")} on :{appPort}");
        }
    }

    private static string Words(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => "connection refused",
        SocketError.ConnectionReset => "connection reset",
        SocketError.TimedOut => "timed out",
        SocketError.HostUnreachable or SocketError.NetworkUnreachable => "unreachable",
        _ => error.ToString(),
    };
}
