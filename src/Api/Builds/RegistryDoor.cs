using System.Net;
using System.Net.Sockets;
using Platform.Host.Linux;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>
/// The platform's registry, reachable from inside one build's network name-space while the build pulls its bases or
/// pushes its image, so that buildah does both from the build's network and never from the Api's (the build account
/// talks to nothing on the host's network). The build firewall drops everything from the build bridge to this
/// machine, so the registry is brought to the build instead: a listener inside the name-space, on the registry's own
/// address and port (its loopback, or the addresses its host name has, added to the name-space's loopback), relays
/// each connection to the registry from the Api's side. The name buildah uses, the registry's token realm and the
/// build's auth file stay what they are. Open only around <c>pull</c> and <c>push</c>: during <c>bud</c> the RUN
/// steps share the name-space and find nothing listening there.
/// A plain TCP relay (no served package relays into another name-space): each direction copied until its end,
/// at most <see cref="MaxConnections"/> at once, all of it cut when the door closes.
/// </summary>
public sealed class RegistryDoor : IAsyncDisposable
{
    private const int MaxConnections = 32;
    private readonly CancellationTokenSource _closed = new();
    private readonly List<(Socket Listener, DnsEndPoint Registry)> _listeners;
    private readonly SemaphoreSlim _slots = new(MaxConnections, MaxConnections);
    private readonly List<Task> _loops;
    private int _connections;

    private RegistryDoor(List<(Socket Listener, DnsEndPoint Registry)> listeners)
    {
        _listeners = listeners;
        _loops = listeners.Select(l => Task.Run(() => AcceptAsync(l.Listener, l.Registry))).ToList();
    }

    /// <summary>How many connections came through the door (the pulls or the push made them).</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Opens the door to <paramref name="registry"/> (host:port, as builds name it) inside the name-space at <paramref name="netnsPath"/>.</summary>
    public static async Task<RegistryDoor> OpenAsync(string netnsPath, string registry, CancellationToken ct)
    {
        var uri = new Uri("http://" + registry);
        // A registry named without a port is tried by buildah on 443 (TLS) and then on 80: the door takes both.
        int[] ports = registry.EndsWith(":" + uri.Port, StringComparison.Ordinal) ? [uri.Port] : [443, 80];
        var addresses = IPAddress.TryParse(uri.Host.Trim('[', ']'), out var literal) ? [literal]
            : (await Dns.GetHostAddressesAsync(uri.Host, ct)).Where(a => a.AddressFamily == AddressFamily.InterNetwork).ToArray();
        if (addresses.Length == 0) throw new BuildFailure($"The platform's registry {registry} has no IPv4 address for the build's network.");
        var listeners = new List<(Socket, DnsEndPoint)>();
        try
        {
            foreach (var address in addresses)
            {
                // The name-space's loopback answers 127.0.0.0/8 already; another address of the registry's is added to it,
                // so buildah's connection to it stays inside the name-space and reaches the door.
                if (!IPAddress.IsLoopback(address))
                    await ProcessRunner.RunAsync("nsenter", ["--net=" + netnsPath, "ip", "addr", "replace", $"{address}/{(address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)}", "dev", "lo"], ct);
                foreach (var port in ports)
                    listeners.Add((NetworkNamespaces.ListenInside(netnsPath, new IPEndPoint(address, port), MaxConnections), new DnsEndPoint(uri.Host, port)));
            }
        }
        catch
        {
            foreach (var (l, _) in listeners) l.Dispose();
            throw;
        }
        return new RegistryDoor(listeners);
    }

    private async Task AcceptAsync(Socket listener, DnsEndPoint registry)
    {
        var pipes = new List<Task>();
        try
        {
            while (true)
            {
                await _slots.WaitAsync(_closed.Token);
                var client = await listener.AcceptAsync(_closed.Token);
                Interlocked.Increment(ref _connections);
                pipes.RemoveAll(p => p.IsCompleted);
                pipes.Add(Task.Run(() => RelayAsync(client, registry)));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // closed
        }
        await Task.WhenAll(pipes);
    }

    private async Task RelayAsync(Socket client, DnsEndPoint target)
    {
        using var cut = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token);
        using var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await upstream.ConnectAsync(target, cut.Token);
            await using var inside = new NetworkStream(client, ownsSocket: false);
            await using var registry = new NetworkStream(upstream, ownsSocket: false);
            await Task.WhenAll(CopyAsync(inside, registry, upstream, cut), CopyAsync(registry, inside, client, cut));
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
        {
            // the registry refused, or the door closed
        }
        finally
        {
            client.Dispose();
            _slots.Release();
        }
    }

    /// <summary>One direction until its end (then the other side is told, and the other direction goes on), or until either fails.</summary>
    private static async Task CopyAsync(Stream from, Stream to, Socket toSocket, CancellationTokenSource cut)
    {
        try
        {
            await from.CopyToAsync(to, 81920, cut.Token);
            toSocket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            await cut.CancelAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _closed.CancelAsync();
        foreach (var (l, _) in _listeners) l.Dispose();
        await Task.WhenAll(_loops);
        _closed.Dispose();
    }
}
