using System.Diagnostics;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Infrastructure;

/// <summary>The solution's other programs (agent, Portal), as built beside the tests, started as real processes.</summary>
public static class Built
{
    /// <summary>src/{project}/bin/{the tests' configuration}/net10.0/{assembly}.dll.</summary>
    public static string Dll(string project, string assembly)
    {
        var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(RegistryFixture.RepoRoot, "src", project, "bin", configuration, "net10.0", assembly + ".dll");
        Assert.True(File.Exists(dll), $"{dll} is built with the solution (dotnet build Platform.sln)");
        return dll;
    }

    /// <summary>Starts <paramref name="file"/>; stdout and stderr go, line by line, to <paramref name="logFile"/> (or nowhere).</summary>
    public static Process Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> env, string? logFile)
    {
        var psi = new ProcessStartInfo(file, args) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var process = Process.Start(psi)!;
        StreamWriter? log = null;
        if (logFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFile))!);
            log = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        }
        // One writer for both streams: two appenders on one file would collide.
        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync() is { } line)
                if (log is not null)
                    lock (log) log.WriteLine(line);
        }
        _ = Task.WhenAll(Pump(process.StandardOutput), Pump(process.StandardError)).ContinueWith(_ => log?.Dispose(), TaskScheduler.Default);
        return process;
    }

    /// <summary>A log <see cref="Start"/> writes, read while its process may still be writing it.</summary>
    public static string ReadLog(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(file);
        return reader.ReadToEnd();
    }

    /// <summary>Waits until <paramref name="http"/>'s <c>/readyz</c> answers 200; fails at once when <paramref name="process"/> (the Api behind it) exits.</summary>
    public static async Task WaitReadyAsync(HttpClient http, Process? process, int seconds, string what, Func<string>? whyExited = null) =>
        await Nodes.Cluster.WaitAsync(async () =>
        {
            Assert.False(process?.HasExited == true, $"{what}: the process exited {whyExited?.Invoke()}");
            try { return (await http.GetAsync("/readyz")).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, seconds, what);
}
