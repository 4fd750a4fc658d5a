using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Platform.Host.Processes;

/// <summary>What the benchmark harnesses share: processes, tools, waiting, medians.</summary>
public static class BenchKit
{
    public static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static Process Start(string dll, Dictionary<string, string> env, string log)
    {
        var psi = new ProcessStartInfo("dotnet", [dll]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        var writer = new StreamWriter(new FileStream(log, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync() is { } l)
                lock (writer) writer.WriteLine(l);   // one writer for both streams
        }
        _ = Task.WhenAll(Pump(p.StandardOutput), Pump(p.StandardError)).ContinueWith(_ => writer.Dispose(), TaskScheduler.Default);
        return p;
    }

    /// <summary>A tool run to its end through the platform's one process runner (five minutes at most).</summary>
    public static Task<ProcessResult> Tool(string file, params string[] args) => ProcessRunner.RunAsync(file, args, CancellationToken.None, TimeSpan.FromMinutes(5));

    /// <summary>The same with variables set and <paramref name="stdin"/> written to its input (a CNI plugin's JSON).</summary>
    public static Task<ProcessResult> Tool(IReadOnlyDictionary<string, string?> env, string stdin, string file, params string[] args) =>
        ProcessRunner.RunAsync(file, args, CancellationToken.None, TimeSpan.FromMinutes(5), env, stdin);

    public static async Task<string> Check(Task<ProcessResult> run)
    {
        var r = await run;
        return r.ExitCode == 0 ? r.Stdout : throw new InvalidOperationException($"exit {r.ExitCode}: {r.Stderr}");
    }

    public static async Task<T?> Try<T>(Func<Task<T>> call) where T : class
    {
        try { return await call(); }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return null; }
    }

    public static async Task Until(Func<Task<bool>> condition, int seconds, string what, TimeSpan? every = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(every ?? TimeSpan.FromMilliseconds(5));
        }
        throw new TimeoutException($"timed out waiting for {what}");
    }

    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
