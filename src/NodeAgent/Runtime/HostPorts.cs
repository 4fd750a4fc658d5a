using System.Net;
using System.Net.Sockets;

namespace Platform.NodeAgent.Runtime;

/// <summary>The host ports handed to instances for the router: a free one in the agent's range, not held by another instance and bindable right now.</summary>
public sealed class HostPorts(int start, int size)
{
    private readonly HashSet<int> _taken = [];
    private readonly Lock _lock = new();

    public void Reserve(int port)
    {
        lock (_lock) _taken.Add(port);
    }

    public void Release(int port)
    {
        lock (_lock) _taken.Remove(port);
    }

    public int Allocate()
    {
        lock (_lock)
        {
            var offset = Random.Shared.Next(size);
            for (var n = 0; n < size; n++)
            {
                var port = start + (offset + n) % size;
                if (_taken.Contains(port)) continue;
                try
                {
                    using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    probe.Bind(new IPEndPoint(IPAddress.Any, port));
                }
                catch (SocketException)
                {
                    continue;
                }
                _taken.Add(port);
                return port;
            }
            throw new InvalidOperationException("no free host port in the agent's range");
        }
    }
}
