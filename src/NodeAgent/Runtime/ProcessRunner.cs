using System.Diagnostics;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// The one place that starts programs (runc, ip, CNI plugins): an argument list (never a shell
/// string built from data), a time limit that kills the whole tree, stderr captured into the error.
/// </summary>
public static class ProcessRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct,
        IDictionary<string, string>? env = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"{file} did not start");
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', psi.ArgumentList)} did not finish within {timeout}");
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    public static async Task<Result> CheckedAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct,
        IDictionary<string, string>? env = null, string? stdin = null)
    {
        var r = await RunAsync(file, args, timeout, ct, env, stdin);
        return r.ExitCode == 0 ? r : throw new InvalidOperationException($"{file} exited with {r.ExitCode}: {r.Stderr.Trim()}");
    }
}
