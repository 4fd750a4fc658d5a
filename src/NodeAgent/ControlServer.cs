using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Platform.Host.Text;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent;

/// <summary>
/// The agent's own small HTTP endpoint, for the Api only: <c>GET /v1/instances/{id}/logs?tail=&amp;follow=</c>
/// serves an instance's log files (the rotated one, then the current one) and, with follow, what is
/// written next. Callers present the key this agent made at start and reported in its heartbeats.
/// </summary>
public sealed class ControlServer(TimeProvider clock) : IAsyncDisposable
{
    /// <summary>
    /// The longest line served, in characters: longer ones are cut there with a marker and the rest of the line is
    /// dropped, in tails and while following, so a tenant printing without a newline costs the agent no more.
    /// </summary>
    public const int MaxLine = 16 * 1024;

    private WebApplication? _app;
    public string Key { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
    public int Port { get; private set; }

    public async Task StartAsync(string address, int port, IContainerRuntime instances, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            if (IPAddress.TryParse(address, out var ip)) k.Listen(ip, port);
            else k.ListenAnyIP(port);
        });
        _app = builder.Build();
        var expected = Encoding.ASCII.GetBytes("Bearer " + Key);
        _app.Use(async (context, next) =>
        {
            var given = Encoding.ASCII.GetBytes(context.Request.Headers.Authorization.ToString());
            if (!CryptographicOperations.FixedTimeEquals(given, expected))
            {
                context.Response.StatusCode = 401;
                return;
            }
            await next(context);
        });
        _app.MapGet("/v1/instances/{id:guid}/logs", async (Guid id, int? tail, bool? follow, HttpContext context) =>
        {
            var bundle = instances.LogFolderOf(id);
            if (bundle is null) return Results.NotFound();
            context.Response.ContentType = "text/plain; charset=utf-8";
            await context.Response.StartAsync(context.RequestAborted);
            await StreamAsync(bundle, Math.Clamp(tail ?? 100, 0, 10_000), follow == true, context.Response, context.RequestAborted);
            return Results.Empty;
        });
        await _app.StartAsync(ct);
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Port = new Uri(bound.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1")).Port;
    }

    private async Task StreamAsync(string bundle, int tail, bool follow, HttpResponse response, CancellationToken ct)
    {
        var current = Path.Combine(bundle, "output.log");
        var last = new Queue<string>();
        foreach (var file in new[] { current + ".1", current })
        {
            if (!File.Exists(file)) continue;
            using var stream = new StreamReader(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
            var reader = new LineReader(stream, MaxLine);
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                last.Enqueue(line);
                if (last.Count > tail) last.Dequeue();
            }
        }
        foreach (var line in last) await response.WriteAsync(line + "\n", ct);
        await response.Body.FlushAsync(ct);
        if (!follow) return;

        long position = File.Exists(current) ? new FileInfo(current).Length : 0;
        var cutter = new LineCutter(MaxLine);   // keeps back at most one partial line
        var buffer = new byte[64 * 1024];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        var decoder = Encoding.UTF8.GetDecoder();   // keeps a character split across reads whole
        var lines = new StringBuilder();
        try
        {
            while (!ct.IsCancellationRequested && Directory.Exists(bundle))
            {
                var length = File.Exists(current) ? new FileInfo(current).Length : 0;
                if (length < position)
                {
                    position = 0;   // rotated (truncated in place)
                    cutter.Reset();
                }
                if (length > position)
                {
                    await using var stream = new FileStream(current, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    stream.Seek(position, SeekOrigin.Begin);
                    int read;
                    while ((read = await stream.ReadAsync(buffer, ct)) > 0)
                    {
                        position += read;
                        cutter.Feed(chars.AsSpan(0, decoder.GetChars(buffer, 0, read, chars, 0)), line => lines.Append(line).Append('\n'));
                        if (lines.Length == 0) continue;
                        await response.WriteAsync(lines.ToString(), ct);   // at most a buffer's worth of lines
                        lines.Clear();
                    }
                    await response.Body.FlushAsync(ct);
                }
                await Task.Delay(TimeSpan.FromMilliseconds(200), clock, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // The instance was removed while followed: the stream ends.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
