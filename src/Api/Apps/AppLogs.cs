using System.Net.Http.Headers;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Data;
using Platform.Host.Text;

namespace Platform.Api.Apps;

/// <summary>
/// <c>GET …/apps/{app}/logs?tail=100&amp;follow=true</c>: the app's stdout and stderr, merged from the
/// log files of its instances on their nodes (each agent serves its own files; logs stay on the node
/// as the kubelet's do). Each line is prefixed with the instance's short id. <c>text/plain</c> by
/// default, Server-Sent Events when the client accepts <c>text/event-stream</c>. With follow the
/// response stays open and new lines arrive as the instances write them. Bounded: lines are cut at
/// <see cref="MaxLine"/>, and a client that stops reading loses the oldest waiting lines, with a note.
/// </summary>
public static class AppLogs
{
    public const int MaxTail = 10_000;
    /// <summary>The longest line relayed (characters): an agent's own bound, kept here too whatever an agent sends.</summary>
    public const int MaxLine = 16 * 1024;
    /// <summary>Lines waiting for a slow client, per stream (<see cref="LogLines"/>).</summary>
    public const int MaxWaitingLines = 1024;
    /// <summary>How long a client may take no line before new lines replace the oldest waiting ones.</summary>
    public static readonly TimeSpan ReaderPatience = TimeSpan.FromSeconds(5);

    public static async Task StreamAsync(
        string team, string project, string app, int? tail, bool? follow, HttpContext http, AccessService access,
        PlatformDbContext db, Nodes.NodeControlKeys keys, IHttpClientFactory clients, TimeProvider clock, CancellationToken ct)
    {
        if (tail is < 0 or > MaxTail)
        {
            await Problems.Validation("tail", $"must be between 0 and {MaxTail}.").ExecuteAsync(http);
            return;
        }
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) { await problem.ExecuteAsync(http); return; }
        var sources = await db.Instances.AsNoTracking().Where(i => i.AppId == a!.Id)
            .Select(i => new { i.Id, i.Node!.Address, i.Node.ControlPort, i.Node.ProtectedControlKey }).ToListAsync(ct);

        var sse = http.Request.Headers.Accept.ToString().Contains("text/event-stream", StringComparison.OrdinalIgnoreCase);
        http.Response.ContentType = sse ? "text/event-stream" : "text/plain; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        await http.Response.StartAsync(ct);
        await http.Response.Body.FlushAsync(ct);   // headers now: a follower may wait long for the first line

        var lines = new LogLines(MaxWaitingLines, ReaderPatience, clock);
        var client = clients.CreateClient("agents");
        var readers = sources.Select(src => Task.Run(async () =>
        {
            var prefix = src.Id.ToString("N")[^8..];   // the random end: v7 ids made together share their start
            try
            {
                var key = keys.Unprotect(src.ProtectedControlKey);
                if (src.Address is null || src.ControlPort is null || key is null)
                    throw new HttpRequestException("the node has not reported its control endpoint");
                var host = src.Address.Contains(':') ? $"[{src.Address}]" : src.Address;
                using var request = new HttpRequestMessage(HttpMethod.Get,
                    $"http://{host}:{src.ControlPort}/v1/instances/{src.Id:N}/logs?tail={tail ?? 100}&follow={(follow == true ? "true" : "false")}");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (!response.IsSuccessStatusCode)
                {
                    await lines.WriteAsync($"[{prefix}] (no logs: the node answered {(int)response.StatusCode})", ct);
                    return;
                }
                using var stream = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
                var reader = new LineReader(stream, MaxLine);
                while (await reader.ReadLineAsync(ct) is { } line)
                    await lines.WriteAsync($"[{prefix}] {line}", ct);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                await lines.WriteAsync($"[{prefix}] (logs unavailable: {e.Message})", CancellationToken.None);
            }
        }, ct)).ToList();
        _ = Task.WhenAll(readers).ContinueWith(_ => lines.Complete(), TaskScheduler.Default);

        try
        {
            await foreach (var line in lines.ReadAllAsync(ct))
            {
                await http.Response.WriteAsync(sse ? $"data: {line}\n\n" : line + "\n", ct);
                if (!lines.HasMore) await http.Response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away: the agents' streams end with the request.
        }
    }
}
