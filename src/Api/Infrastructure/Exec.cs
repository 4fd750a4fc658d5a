using System.Diagnostics;

namespace Platform.Api.Infrastructure;

/// <summary>Runs a short command (git, ip, iptables, buildah housekeeping) and returns its exit code and output.</summary>
public static class Exec
{
    public sealed record Result(int Exit, string Output, string Error)
    {
        public Result EnsureSuccess(string what) =>
            Exit == 0 ? this : throw new InvalidOperationException($"{what} failed ({Exit}): {Error.Trim()}");
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, CancellationToken ct, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file, args) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        var error = process.StandardError.ReadToEndAsync(ct);
        var output = await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return new(process.ExitCode, output, await error);
    }
}
