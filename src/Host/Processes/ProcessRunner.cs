using System.Diagnostics;
using System.Text;

namespace Platform.Host.Processes;

/// <summary>
/// The one way the platform starts programs (git, buildah, runc, ip, iptables, CNI plugins, mount):
/// argument lists, a time limit, cancellation that kills the whole process tree, output captured up
/// to a bound (a program that prints without end costs no more memory than that) and, for long steps,
/// streamed line by line as it comes. Output is always drained, even when a callback throws, so a
/// program never blocks on a full pipe.
/// </summary>
public static class ProcessRunner
{
    /// <summary>How long output still drains after the program exited (a grandchild may hold the pipe open).</summary>
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(2);

    /// <summary>Runs <paramref name="spec"/> to its end. Throws <see cref="TimeoutException"/> past its time limit and
    /// <see cref="OperationCanceledException"/> when <paramref name="ct"/> fires; in both cases the process tree is killed first.</summary>
    public static async Task<ProcessResult> RunAsync(ProcessSpec spec, CancellationToken ct)
    {
        using var limit = Limit(spec, ct);
        using var process = Start(spec, redirectStdin: true);
        var stdout = new Capture(spec.MaxCapture, keepEnd: false);
        var stderr = new Capture(spec.MaxCapture, keepEnd: true);
        var pumps = Task.WhenAll(
            PumpAsync(process.StandardOutput, spec, false, stdout),
            PumpAsync(process.StandardError, spec, true, stderr));
        var feed = FeedAsync(process, spec.Stdin, limit.Token);
        await WaitAsync(process, spec, limit.Token, ct);
        await Task.WhenAny(Task.WhenAll(pumps, feed), Task.Delay(Drain, CancellationToken.None));
        return new ProcessResult(process.ExitCode, stdout.ToString(), stderr.ToString(), stdout.Truncated || stderr.Truncated);
    }

    /// <summary><see cref="RunAsync(ProcessSpec, CancellationToken)"/> for a short command.</summary>
    public static Task<ProcessResult> RunAsync(string file, IReadOnlyList<string> args, CancellationToken ct,
        TimeSpan? timeout = null, IReadOnlyDictionary<string, string?>? env = null, string? stdin = null) =>
        RunAsync(new ProcessSpec(file, args) { Timeout = timeout ?? ProcessSpec.DefaultTimeout, Env = env, Stdin = stdin }, ct);

    /// <summary>Runs a short command and throws <see cref="ProcessFailedException"/> unless it exits 0.</summary>
    public static async Task<ProcessResult> CheckedAsync(string file, IReadOnlyList<string> args, CancellationToken ct,
        TimeSpan? timeout = null, IReadOnlyDictionary<string, string?>? env = null, string? stdin = null) =>
        (await RunAsync(file, args, ct, timeout, env, stdin)).EnsureSuccess($"{file} {string.Join(' ', args.Take(3))}");

    /// <summary>
    /// Starts a program whose stdin and stdout the caller streams (a CGI such as git http-backend) or, with
    /// <see cref="ProcessSpec.OnLine"/>, whose lines arrive there (a long step such as a build). Stderr is
    /// captured up to the bound. Disposing it kills the tree if it still runs.
    /// </summary>
    public static RunningProcess Start(ProcessSpec spec) => new(Start(spec, redirectStdin: true), spec);

    /// <summary>
    /// Starts a program that outlives this process (the container shim): no pipes to this process, so it
    /// does not die when this one does; what it does is learnt from what it writes itself. Returns its pid.
    /// </summary>
    public static int StartDetached(ProcessSpec spec)
    {
        var psi = Info(spec, redirect: false, redirectStdin: false);
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"{spec.File} did not start");
        return process.Id;
    }

    /// <summary>Kills the process <paramref name="pid"/> and its descendants (a detached program that must go after all).</summary>
    public static void KillTree(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            Kill(process);
        }
        catch (ArgumentException)
        {
            // It has gone.
        }
    }

    /// <summary>The token that fires on the caller's cancel or the spec's time limit, whichever comes first.</summary>
    internal static CancellationTokenSource Limit(ProcessSpec spec, CancellationToken ct)
    {
        var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (spec.Timeout != Timeout.InfiniteTimeSpan) limit.CancelAfter(spec.Timeout);
        return limit;
    }

    /// <summary>Writes the spec's stdin (or nothing) and closes it, without holding up the wait for the exit.</summary>
    internal static Task FeedAsync(Process process, string? stdin, CancellationToken ct) => Task.Run(async () =>
    {
        try
        {
            if (stdin is not null) await process.StandardInput.WriteAsync(stdin.AsMemory(), ct);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The program exited without reading all of its input (its exit code tells), or it is being killed.
        }
        finally
        {
            try { process.StandardInput.Close(); }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { }
        }
    }, CancellationToken.None);

    /// <summary>Waits for the exit; when <paramref name="limit"/> fires first the tree is killed and the reason thrown.</summary>
    internal static async Task WaitAsync(Process process, ProcessSpec spec, CancellationToken limit, CancellationToken ct)
    {
        try
        {
            await process.WaitForExitAsync(limit);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            try { await process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None); }
            catch (TimeoutException) { }
            ct.ThrowIfCancellationRequested();
            throw new TimeoutException($"{spec} did not finish within {spec.Timeout.TotalSeconds:0.#} s and was killed");
        }
    }

    internal static void Kill(Process process)
    {
        try { process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }   // it has exited
        catch (System.ComponentModel.Win32Exception) { }
    }

    private static Process Start(ProcessSpec spec, bool redirectStdin) =>
        Process.Start(Info(spec, redirect: true, redirectStdin)) ?? throw new InvalidOperationException($"{spec.File} did not start");

    private static ProcessStartInfo Info(ProcessSpec spec, bool redirect, bool redirectStdin)
    {
        var psi = new ProcessStartInfo(spec.File)
        {
            UseShellExecute = false, RedirectStandardOutput = redirect, RedirectStandardError = redirect, RedirectStandardInput = redirectStdin,
        };
        if (redirect)
        {
            psi.StandardOutputEncoding = spec.OutputEncoding;
            psi.StandardErrorEncoding = spec.OutputEncoding;
        }
        if (spec.WorkingDirectory is not null) psi.WorkingDirectory = spec.WorkingDirectory;
        foreach (var a in spec.Args) psi.ArgumentList.Add(a);
        if (spec.Env is not null)
            foreach (var (k, v) in spec.Env)
                if (v is null) psi.Environment.Remove(k);
                else psi.Environment[k] = v;
        return psi;
    }

    /// <summary>
    /// Reads a stream as lines of at most <see cref="ProcessSpec.MaxLine"/> characters: each goes to OnLine and,
    /// when kept, to the capture. A callback that throws is not called again, but the stream is read to its end.
    /// </summary>
    internal static async Task PumpAsync(StreamReader reader, ProcessSpec spec, bool isStderr, Capture? capture)
    {
        var buffer = new char[8192];
        var line = new StringBuilder();
        var callbacks = true;
        // newline: whether the line ended in the delimiter (a piece cut at MaxLine did not: the capture keeps the text as it was).
        void Emit(bool newline)
        {
            var text = line.ToString();
            line.Clear();
            if (callbacks)
            {
                try
                {
                    if (spec.Keep is { } keep && !keep(text)) return;
                    spec.OnLine?.Invoke(text, isStderr);
                }
                catch (Exception)
                {
                    callbacks = false;   // the caller's bug must not stop the draining: the program would block on a full pipe
                    return;
                }
            }
            else if (spec.Keep is not null)
            {
                return;   // without its filter nothing more is kept (it may be what keeps secrets out)
            }
            capture?.Append(text, newline, spec.Delimiter);
        }
        try
        {
            int read;
            while ((read = await reader.ReadAsync(buffer.AsMemory(), CancellationToken.None)) > 0)
            {
                for (var i = 0; i < read; i++)
                {
                    var c = buffer[i];
                    if (c == spec.Delimiter) Emit(newline: true);
                    else
                    {
                        line.Append(c);
                        if (line.Length >= spec.MaxLine) Emit(newline: false);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The process was killed while it wrote.
        }
        if (line.Length > 0) Emit(newline: false);
    }

    /// <summary>
    /// Text up to a bound: the beginning of it (stdout, parsed by callers) or its end (stderr, where the last
    /// error is). The end is trimmed only once it holds twice the bound, so many short lines cost linear time.
    /// </summary>
    internal sealed class Capture(int max, bool keepEnd)
    {
        private readonly StringBuilder _text = new();
        private readonly Lock _lock = new();
        public bool Truncated { get; private set; }

        public void Append(string line, bool newline, char delimiter = '\n')
        {
            lock (_lock)
            {
                if (!keepEnd && _text.Length >= max)
                {
                    Truncated = true;
                    return;
                }
                _text.Append(line);
                if (newline) _text.Append(delimiter);
                if (_text.Length <= max) return;
                Truncated = true;
                if (!keepEnd) _text.Length = max;
                else if (_text.Length > 2 * max) _text.Remove(0, _text.Length - max);
            }
        }

        public override string ToString()
        {
            lock (_lock) return _text.Length > max ? _text.ToString(_text.Length - max, max) : _text.ToString();
        }
    }
}

/// <summary>A started program whose streams the caller uses; see <see cref="ProcessRunner.Start"/>.</summary>
public sealed class RunningProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ProcessSpec _spec;
    private readonly ProcessRunner.Capture _stderr;
    private readonly Task _pumps;

    internal RunningProcess(Process process, ProcessSpec spec)
    {
        _process = process;
        _spec = spec;
        _stderr = new ProcessRunner.Capture(spec.MaxCapture, keepEnd: true);
        var pumps = new List<Task> { ProcessRunner.PumpAsync(process.StandardError, spec, true, _stderr) };
        if (spec.OnLine is not null) pumps.Add(ProcessRunner.PumpAsync(process.StandardOutput, spec, false, null));
        if (spec.Stdin is not null) pumps.Add(ProcessRunner.FeedAsync(process, spec.Stdin, CancellationToken.None));
        _pumps = Task.WhenAll(pumps);
    }

    public int Id => _process.Id;

    public Stream Stdin => _process.StandardInput.BaseStream;

    /// <summary>
    /// Ends the program's input (it reads end of file) after what was written to <see cref="Stdin"/>. Use this
    /// rather than disposing <see cref="Stdin"/>, whose writer would then fail when the process is disposed.
    /// </summary>
    public void CloseStdin()
    {
        try { _process.StandardInput.Close(); }
        catch (IOException) { }   // it exited without reading its input: its exit code tells
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException) { }   // disposed already (killed)
    }

    public Stream Stdout => _spec.OnLine is null ? _process.StandardOutput.BaseStream
        : throw new InvalidOperationException("stdout goes to OnLine");

    public bool HasExited => _process.HasExited;

    /// <summary>Waits for the exit within the spec's time limit; a cancel or time-out kills the tree (and throws).</summary>
    public async Task<ProcessResult> WaitAsync(CancellationToken ct)
    {
        using var limit = ProcessRunner.Limit(_spec, ct);
        await ProcessRunner.WaitAsync(_process, _spec, limit.Token, ct);
        await Task.WhenAny(_pumps, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None));
        return new ProcessResult(_process.ExitCode, "", _stderr.ToString(), _stderr.Truncated);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            ProcessRunner.Kill(_process);
            try { await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)); }
            catch (TimeoutException) { }
        }
        _process.Dispose();
    }
}
