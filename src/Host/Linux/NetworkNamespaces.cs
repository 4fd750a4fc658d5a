using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Platform.Host.Processes;

namespace Platform.Host.Linux;

/// <summary>Named network name-spaces (<c>ip netns</c>), for builds and instances alike.</summary>
public static class NetworkNamespaces
{
    public static string PathOf(string name) => "/var/run/netns/" + name;

    public static bool Exists(string name) => File.Exists(PathOf(name));

    public static async Task AddAsync(string name, CancellationToken ct)
    {
        if (!Exists(name)) await ProcessRunner.CheckedAsync("ip", ["netns", "add", name], ct);
    }

    /// <summary>Deletes the name-space (throws when ip cannot); nothing happens when it is not there.</summary>
    public static async Task DeleteAsync(string name, CancellationToken ct)
    {
        if (Exists(name)) await ProcessRunner.CheckedAsync("ip", ["netns", "delete", name], ct);
    }

    /// <summary>The names of this machine's named name-spaces.</summary>
    public static async Task<IReadOnlyList<string>> ListAsync(CancellationToken ct)
    {
        var r = await ProcessRunner.RunAsync("ip", ["netns", "list"], ct);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToList();
    }

    /// <summary><c>ip</c> with the given arguments inside name-space <paramref name="name"/> (<c>ip -n</c>); throws when it fails.</summary>
    public static Task<ProcessResult> IpAsync(string name, IReadOnlyList<string> args, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("ip", ["-n", name, .. args], ct);

    /// <summary>
    /// A TCP socket listening on <paramref name="endpoint"/> inside the network name-space at <paramref name="netnsPath"/>,
    /// made by a thread of its own that enters the name-space, makes the socket and goes back (a socket stays in the
    /// name-space it was made in; accepting and everything after run on any thread of this process). Needs root.
    /// </summary>
    public static Socket ListenInside(string netnsPath, IPEndPoint endpoint, int backlog)
    {
        Socket? socket = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            var home = Open("/proc/thread-self/ns/net");
            var target = Open(netnsPath);
            try
            {
                if (home < 0 || target < 0) throw new IOException($"Cannot open the network name-space {netnsPath}: errno {Marshal.GetLastPInvokeError()}");
                if (SetNs(target, CloneNewNet) != 0) throw new IOException($"Cannot enter the network name-space {netnsPath}: errno {Marshal.GetLastPInvokeError()}");
                try
                {
                    socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    socket.Bind(endpoint);
                    socket.Listen(backlog);
                }
                finally
                {
                    // This thread ends right after; were the way back refused, it would end inside the build's name-space,
                    // having run nothing else there.
                    SetNs(home, CloneNewNet);
                }
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                socket?.Dispose();
                socket = null;
                error = e;
            }
            finally
            {
                if (home >= 0) Close(home);
                if (target >= 0) Close(target);
            }
        }) { IsBackground = true, Name = "netns listener" };
        thread.Start();
        thread.Join();
        return socket ?? throw (error is SocketException s ? new IOException($"Cannot listen on {endpoint} in {netnsPath}: {s.Message}", s) : error!);
    }

    private const int CloneNewNet = 0x40000000;
    private const int ReadOnlyCloseOnExec = 0x80000;   // O_RDONLY | O_CLOEXEC

    private static int Open(string path) => OpenFile(path, ReadOnlyCloseOnExec);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenFile([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);
}
