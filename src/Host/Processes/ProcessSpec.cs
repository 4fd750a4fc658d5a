namespace Platform.Host.Processes;

/// <summary>
/// A program to run: an argument list (never a shell string built from data), its environment and
/// working folder, what goes to its stdin, how long it may take and how much of its output is kept.
/// </summary>
public sealed record ProcessSpec(string File, IReadOnlyList<string> Args)
{
    /// <summary>The time a short command gets when the caller names none.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Variables set on top of this process's environment (a null value removes one).</summary>
    public IReadOnlyDictionary<string, string?>? Env { get; init; }

    public string? WorkingDirectory { get; init; }

    /// <summary>Text written to the program's stdin, which is then closed; without it stdin is empty.</summary>
    public string? Stdin { get; init; }

    /// <summary>Past this the process tree is killed and <see cref="TimeoutException"/> thrown; <see cref="Timeout.InfiniteTimeSpan"/> for none.</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>Characters of stdout kept (its beginning) and of stderr kept (its end); the rest is counted as truncated.</summary>
    public int MaxCapture { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Each line of stdout and stderr as it comes (false = stdout, true = stderr), for long steps whose
    /// output is shown live. A line longer than <see cref="MaxLine"/> arrives in pieces of that length.
    /// </summary>
    public Action<string, bool>? OnLine { get; init; }

    public int MaxLine { get; init; } = 16 * 1024;

    /// <summary>What ends a line of output: a newline, or '\0' for programs that separate names with NUL (find -print0).</summary>
    public char Delimiter { get; init; } = '\n';

    /// <summary>How stdout and stderr are decoded; Latin-1 keeps arbitrary bytes (file names that are not UTF-8) one char each.</summary>
    public System.Text.Encoding OutputEncoding { get; init; } = System.Text.Encoding.UTF8;

    /// <summary>Whether a line of output is kept in <see cref="ProcessResult.Stdout"/>/<see cref="ProcessResult.Stderr"/> (false drops it, e.g. a line with a secret).</summary>
    public Func<string, bool>? Keep { get; init; }

    /// <summary>The command for error messages (file and arguments, no environment: values there may be secrets).</summary>
    public override string ToString() => Args.Count == 0 ? File : $"{File} {string.Join(' ', Args)}";
}

/// <summary>How a program ended and what it printed (bounded by <see cref="ProcessSpec.MaxCapture"/>).</summary>
public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr, bool Truncated)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>This result when the program exited 0; otherwise <see cref="ProcessFailedException"/> naming what failed and its last error.</summary>
    public ProcessResult EnsureSuccess(string what) =>
        ExitCode == 0 ? this : throw new ProcessFailedException(what, this);
}

/// <summary>A program exited with a code other than 0: the message names the step, the code and the end of its stderr.</summary>
public sealed class ProcessFailedException(string what, ProcessResult result)
    : InvalidOperationException($"{what} failed (exit {result.ExitCode}): {Tail(result.Stderr.Trim().Length > 0 ? result.Stderr : result.Stdout)}")
{
    public ProcessResult Result { get; } = result;

    private static string Tail(string text)
    {
        text = text.Trim();
        return text.Length > 2000 ? "…" + text[^2000..] : text;
    }
}
