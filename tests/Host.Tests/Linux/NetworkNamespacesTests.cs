using System.Net;
using System.Net.Sockets;
using Platform.Host.Linux;
using Platform.Host.Processes;

namespace Platform.Host.Tests.Linux;

public sealed class NetworkNamespacesTests
{
    [Fact]
    public async Task A_socket_made_inside_a_name_space_listens_there_and_not_on_the_hosts_loopback()
    {
        var name = "pht-" + Guid.NewGuid().ToString("N")[..8];
        await NetworkNamespaces.AddAsync(name, CancellationToken.None);
        try
        {
            await NetworkNamespaces.IpAsync(name, ["link", "set", "lo", "up"], CancellationToken.None);
            // A port free on the host's loopback now: the listener inside must not take it here.
            int port;
            using (var probe = new Socket(SocketType.Stream, ProtocolType.Tcp))
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                port = ((IPEndPoint)probe.LocalEndPoint!).Port;
            }
            using var listener = NetworkNamespaces.ListenInside(NetworkNamespaces.PathOf(name), new IPEndPoint(IPAddress.Loopback, port), 4);
            var accepted = listener.AcceptAsync();

            // Inside the name-space a client reaches it (the control)…
            var inside = await ProcessRunner.RunAsync("ip", ["netns", "exec", name, "bash", "-c", $"exec 3<>/dev/tcp/127.0.0.1/{port}; echo hello >&3"], CancellationToken.None);
            Assert.True(inside.Succeeded, inside.Stderr);
            using (var peer = await accepted.WaitAsync(TimeSpan.FromSeconds(30)))
            {
                var buffer = new byte[16];
                var n = await peer.ReceiveAsync(buffer);
                Assert.Equal("hello\n", System.Text.Encoding.ASCII.GetString(buffer, 0, n));
            }
            // …and on the host's loopback nothing listens on that port.
            using var outside = new Socket(SocketType.Stream, ProtocolType.Tcp);
            var refused = await Assert.ThrowsAsync<SocketException>(async () => await outside.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            // This thread is in the host's name-space still (the name-space was entered by a thread of its own).
            Assert.Equal(new FileInfo("/proc/self/ns/net").LinkTarget, new FileInfo("/proc/thread-self/ns/net").LinkTarget);
        }
        finally
        {
            await NetworkNamespaces.DeleteAsync(name, CancellationToken.None);
        }
    }
}
