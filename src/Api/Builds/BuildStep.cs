using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>A reason a build failed, in words a person can act on (it becomes the build's reason).</summary>
public sealed class BuildFailure(string message) : Exception(message);

/// <summary>
/// One step of a build (git, buildah) run through <see cref="ProcessRunner"/> inside the build's cgroup: a
/// shell joins it, then execs the step. Its output goes to the build log line by line as it comes, lines
/// carrying a token never (neither the log nor the error); a failure names the step's last error line.
/// Cancelling (cancel request, time limit, shutdown) kills the step's process tree and the cgroup.
/// </summary>
internal static class BuildStep
{
    public static async Task RunAsync(BuildLog output, BuildCgroup? cgroup, string file, IReadOnlyList<string> args,
        IReadOnlyDictionary<string, string?>? env, CancellationToken ct)
    {
        string? last = null;
        var killed = false;
        var join = cgroup is null ? "exec \"$@\"" : string.Join("; ", cgroup.ProcsFiles.Select(f => $"echo $$ > {f}")) + "; exec \"$@\"";
        var spec = new ProcessSpec("/bin/sh", ["-c", join, "step", file, .. args])
        {
            Env = env,
            Timeout = Timeout.InfiniteTimeSpan,   // the build's time limit cancels ct
            MaxCapture = 64 * 1024,               // the log has it all; the result only needs the end
            Keep = line => !line.Contains("plat_", StringComparison.Ordinal),   // never a token in a log
            OnLine = (line, _) =>
            {
                output.Step(line);
                if (line.Contains("error", StringComparison.OrdinalIgnoreCase)) last = line;
                if (line.Contains("exited on killed", StringComparison.Ordinal) || line.Contains("signal: killed", StringComparison.Ordinal)) killed = true;
            },
        };
        ProcessResult result;
        try
        {
            result = await ProcessRunner.RunAsync(spec, ct);
        }
        catch (OperationCanceledException)
        {
            if (cgroup is not null) await cgroup.KillAndRemoveAsync();
            throw;
        }
        if (!result.Succeeded)
            throw new BuildFailure((last ?? $"{file} {args.FirstOrDefault(a => !a.StartsWith('-') && !a.Contains('='))} exited with {result.ExitCode}")
                + (killed ? " (the step was killed)" : ""));
    }
}
