using System.Text;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>A reason a build failed, in words a person can act on (it becomes the build's reason).</summary>
public sealed class BuildFailure(string message) : Exception(message);

/// <summary>
/// One step of a build (git, buildah) run through <see cref="ProcessRunner"/> inside the build's cgroup: a
/// shell joins it, then execs the step. Its output is read as bytes (Latin-1, one char a byte) and goes to the
/// build log line by line as it comes, decoded as UTF-8: a line longer than <see cref="MaxLineBytes"/> keeps its
/// first 64 KiB and a mark, the rest of it is read and dropped; a step that prints more than the log's
/// <see cref="BuildLog.MaxStepBytes"/> in all is stopped. So what a step prints costs the Api a bounded amount of
/// memory and, past the log's limit, only reading. Lines carrying a token never reach the log (nor the error); a
/// failure names the step's last error line. Cancelling (cancel request, time limit, shutdown) kills the step's
/// process tree and the cgroup.
/// </summary>
internal static class BuildStep
{
    public const int MaxLineBytes = 64 * 1024;
    public const string CutMark = " … [line cut at 64 KiB]";

    public static async Task RunAsync(BuildLog output, BuildCgroup? cgroup, string file, IReadOnlyList<string> args,
        IReadOnlyDictionary<string, string?>? env, CancellationToken ct)
    {
        string? last = null;
        var killed = false;
        long bytes = 0;
        var tooMuch = false;
        var cut = new bool[2];   // per stream: the line being read is past MaxLineBytes (its pieces are dropped)
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // umask 022: files a step makes (the checkout above all, copied into the image) get the usual modes.
        var join = "umask 022; " + (cgroup is null ? "exec \"$@\"" : string.Join("; ", cgroup.ProcsFiles.Select(f => $"echo $$ > {f}")) + "; exec \"$@\"");
        var spec = new ProcessSpec("/bin/sh", ["-c", join, "step", file, .. args])
        {
            Env = env,
            Timeout = Timeout.InfiniteTimeSpan,   // the build's time limit cancels ct
            MaxCapture = 4096,                    // unused: the log has the output, the error comes from the lines
            OutputEncoding = Encoding.Latin1,
            MaxLine = MaxLineBytes,               // a longer line arrives in pieces of this size, its last one shorter
            OnLine = (piece, isStderr) =>
            {
                var whole = piece.Length < MaxLineBytes;
                if (Interlocked.Add(ref bytes, piece.Length + (whole ? 1 : 0)) > output.MaxStepBytes && !tooMuch)
                {
                    tooMuch = true;
                    stop.Cancel();
                }
                var stream = isStderr ? 1 : 0;
                if (cut[stream])
                {
                    cut[stream] = !whole;
                    return;
                }
                cut[stream] = !whole;
                var line = Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(piece)) + (whole ? "" : CutMark);
                if (line.Contains("plat_", StringComparison.Ordinal)) return;   // never a token in a log
                output.Step(line);
                if (line.Contains("error", StringComparison.OrdinalIgnoreCase)) last = line.Length > 2000 ? line[..2000] + "…" : line;
                if (line.Contains("exited on killed", StringComparison.Ordinal) || line.Contains("signal: killed", StringComparison.Ordinal)) killed = true;
            },
        };
        ProcessResult result;
        try
        {
            result = await ProcessRunner.RunAsync(spec, stop.Token);
        }
        catch (OperationCanceledException)
        {
            if (cgroup is not null) await cgroup.KillAndRemoveAsync();
            if (tooMuch && !ct.IsCancellationRequested)
                throw new BuildFailure($"A step printed more than {output.MaxStepBytes / (1024 * 1024)} MiB of output and was stopped.");
            throw;
        }
        if (!result.Succeeded)
            throw new BuildFailure((last ?? $"{file} {args.FirstOrDefault(a => !a.StartsWith('-') && !a.Contains('='))} exited with {result.ExitCode}")
                + (killed ? " (the step was killed)" : ""));
    }
}
