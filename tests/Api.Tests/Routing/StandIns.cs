using System.Text;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Tests.Routing;

/// <summary>
/// Stand-in instances for router tests without a node: small Kestrel servers on loopback registered as the Ready
/// instances of an app on a node row. Each answers with its name and the headers the router should set, and echoes
/// WebSocket messages.
/// </summary>
public static class StandIns
{
    public static async Task<(WebApplication App, int Port)> BackendAsync(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.UseWebSockets();
        app.Run(async context =>
        {
            if (context.WebSockets.IsWebSocketRequest)
            {
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                var buffer = new byte[1024];
                var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
                var echo = Encoding.UTF8.GetBytes($"{name} echoes {Encoding.UTF8.GetString(buffer, 0, received.Count)}");
                await socket.SendAsync(echo, WebSocketMessageType.Text, true, CancellationToken.None);
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                return;
            }
            // ?status=N answers N, ?delayMs=N answers after N ms (what the request chart's test needs).
            if (int.TryParse(context.Request.Query["delayMs"], out var delay)) await Task.Delay(delay);
            if (int.TryParse(context.Request.Query["status"], out var status)) context.Response.StatusCode = status;
            await context.Response.WriteAsync($"{name} host={context.Request.Host} xff={context.Request.Headers["X-Forwarded-For"]} xfh={context.Request.Headers["X-Forwarded-Host"]}"
                + $" xfp={context.Request.Headers["X-Forwarded-Proto"]} rid={context.Request.Headers["X-Request-Id"]}");
        });
        await app.StartAsync();
        var port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        return (app, port);
    }

    /// <summary>
    /// A connect callback that sends every host name to 127.0.0.1:<paramref name="port"/>, as <c>curl --resolve</c> does: the URL's
    /// host stays the request's Host and the TLS client's SNI name.
    /// </summary>
    public static Func<System.Net.Http.SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> ToLoopback(int port) => async (_, ct) =>
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), ct);
        return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
    };

    /// <summary>Registers instances listening on <paramref name="ports"/> as Ready instances of app <paramref name="app"/> of team <paramref name="team"/> on a stand-in node; returns their ids.</summary>
    public static async Task<IReadOnlyList<Guid>> RunAsync(PlatformHost host, string team, string app, params int[] ports)
    {
        using var scope = host.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        var a = await db.Apps.SingleAsync(x => x.Name == app && x.Project!.Team!.Name == team);
        var node = new Node { Name = "stand-in-" + Guid.NewGuid().ToString("N")[..6], ClientId = "node-" + Guid.NewGuid().ToString("N"), Address = "127.0.0.1", LastHeartbeatAt = DateTime.UtcNow.AddDays(1) };
        db.Nodes.Add(node);
        var instances = ports.Select(port => new Instance
        {
            Id = Guid.NewGuid(), AppId = a.Id, NodeId = node.Id, ImageRepository = "stand/in/app", ImageDigest = "sha256:" + new string('0', 64),
            State = InstanceStates.Ready, HostPort = port, Generation = 1, CreatedAt = DateTime.UtcNow, UpdatedAt = DateTime.UtcNow,
        }).ToList();
        db.Instances.AddRange(instances);
        await db.SaveChangesAsync();
        return instances.Select(i => i.Id).ToList();
    }
}
