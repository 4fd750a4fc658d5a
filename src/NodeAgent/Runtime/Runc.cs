using System.Text.Json;
using Platform.Host.Linux;
using Platform.Host.Processes;

namespace Platform.NodeAgent.Runtime;

/// <summary>What runc reports of a container.</summary>
public sealed record RuncState(string Id, string Status, int Pid);

/// <summary>
/// runc, driven per instance. Each instance runs under a tiny shim, <c>setsid sh</c>, that waits for
/// <c>runc run</c> and writes its exit code to a file: the shim outlives an agent restart, so the
/// agent adopts running containers and still learns how they ended. The shim also reads the memory
/// cgroup's OOM-kill counter once runc returns (runc runs with <c>--keep</c>, so the cgroup is still
/// there) and records an OOM kill beside the exit code.
/// </summary>
public sealed class Runc(string stateRoot, TimeProvider clock, string runc = "runc")
{
    public Runc(string stateRoot) : this(stateRoot, TimeProvider.System) { }

    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(30);

    private IEnumerable<string> Global => ["--root", stateRoot];

    // The shim's script is constant; the paths and the command arrive as positional parameters. It holds none of
    // the agent's own streams (a harness reading the agent's output sees its end when the agent ends).
    // `runc run --keep` leaves the stopped container and its cgroup in place, so the shim reads the memory
    // cgroup's OOM-kill counter after the exit, before recording the exit code. This is the only OOM signal:
    // a `runc events` watcher per container cost a process each, missed kills before it subscribed, and one
    // left from an earlier run of a restarted container, woken by the old cgroup's removal, found the new
    // cgroup at the same path and marked a plain crash OOM-killed.
    private const string ShimScript =
        "exec </dev/null >/dev/null 2>&1; log=$1; exitfile=$2; oomfile=$3; shift 3; \"$@\" >>\"$log\" 2>&1 </dev/null; code=$?; "
        + "if [ -n \"$oomfile\" ] && grep -qE '^oom_kill [1-9]' \"$oomfile\" 2>/dev/null; then : >\"${exitfile%/*}/oom\"; fi; "
        + "echo $code >\"$exitfile.tmp\" && mv \"$exitfile.tmp\" \"$exitfile\"";

    /// <summary>
    /// Starts the container of <paramref name="bundle"/> detached from the agent; returns once runc reports it
    /// running, or once it ran and ended at once (the exit code tells). When runc could not create it at all
    /// (a mount refused, a bad spec) this throws with runc's own words, and leaves no container behind: a
    /// container id runc half-registered would make every later try fail with "container … already exists".
    /// </summary>
    public async Task StartAsync(string id, string bundle, CancellationToken ct)
    {
        Directory.CreateDirectory(stateRoot);
        await ForgetAsync(id, ct);   // a stopped or half-made container of an earlier try
        var log = Path.Combine(bundle, "output.log");
        var exitFile = Path.Combine(bundle, "exit-code");
        File.Delete(exitFile);
        File.Delete(Path.Combine(bundle, "oom"));
        var pidFile = Path.Combine(bundle, "pid");
        File.Delete(pidFile);
        var logStart = File.Exists(log) ? new FileInfo(log).Length : 0;
        var shim = ProcessRunner.StartDetached(new ProcessSpec("setsid",
            ["sh", "-c", ShimScript, "shim", log, exitFile, OomCounterFile(bundle) ?? "", runc, .. Global, "run", "--keep", "--pid-file", pidFile, "--bundle", bundle, id]));
        // runc writes the pid file once the container exists. Waiting on a file costs nothing, where asking
        // `runc state` every few milliseconds from the start costs a process each time.
        var deadline = clock.GetUtcNow() + Quick;
        while (clock.GetUtcNow() < deadline && !File.Exists(pidFile) && !File.Exists(exitFile))
            await Task.Delay(TimeSpan.FromMilliseconds(2), clock, ct);
        if (!File.Exists(pidFile))
        {
            var why = File.Exists(exitFile) ? RuncError(log, logStart) : $"runc did not create the container within {Quick.TotalSeconds:0} s";
            ProcessRunner.KillTree(shim);   // a runc still creating it must not finish after its state was forgotten
            await ForgetAsync(id, CancellationToken.None);
            throw new InvalidOperationException($"runc could not start the container: {why}");
        }
        // Then a few `runc state` calls until it runs (or ended), so the caller sees a started process.
        while (clock.GetUtcNow() < deadline && !File.Exists(exitFile)
               && await StateAsync(id, ct) is { Status: not "running" and not "stopped" })
            await Task.Delay(TimeSpan.FromMilliseconds(2), clock, ct);
    }

    /// <summary>What runc wrote to the log since <paramref name="from"/>: its last error line, without the JSON log wrapping.</summary>
    private static string RuncError(string log, long from)
    {
        try
        {
            using var f = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            f.Seek(Math.Min(from, f.Length), SeekOrigin.Begin);
            var text = new StreamReader(f).ReadToEnd();
            if (text.Length > 8192) text = text[^8192..];
            // runc's own lines (time=… level=fatal|error msg="…"): their messages, the fatal ones (the cause) first.
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var errors = lines.Where(l => l.Contains("level=fatal", StringComparison.Ordinal))
                .Concat(lines.Where(l => l.Contains("level=error", StringComparison.Ordinal)))
                .Select(l => l.IndexOf("msg=", StringComparison.Ordinal) is var at and >= 0 ? l[(at + 4)..].Trim('"') : l).ToList();
            var why = errors.Count > 0 ? string.Join("; ", errors) : lines.LastOrDefault() ?? "runc exited";
            return why.Length > 1000 ? why[..1000] : why;
        }
        catch (IOException)
        {
            return "runc exited";
        }
    }

    /// <summary>Deletes the container under this state root, and runc's folder for it when runc left one it cannot read.</summary>
    public async Task ForgetAsync(string id, CancellationToken ct)
    {
        await ProcessRunner.RunAsync(runc, [.. Global, "delete", "--force", id], ct);
        var dir = Path.Combine(stateRoot, id);
        if (Directory.Exists(dir) && await StateAsync(id, ct) is null)
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>The file of the container's memory cgroup that counts OOM kills (v1 memory.oom_control, v2 memory.events).</summary>
    private static string? OomCounterFile(string bundle)
    {
        try
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")));
            if (!config.RootElement.TryGetProperty("linux", out var linux) || !linux.TryGetProperty("cgroupsPath", out var p)) return null;
            var path = p.GetString()!;
            return Cgroups.OomCounterFile(path);
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    public async Task<RuncState?> StateAsync(string id, CancellationToken ct)
    {
        var r = await ProcessRunner.RunAsync(runc, [.. Global, "state", id], ct, Quick);
        if (r.ExitCode != 0) return null;
        using var json = JsonDocument.Parse(r.Stdout);
        return new RuncState(id, json.RootElement.GetProperty("status").GetString()!, json.RootElement.GetProperty("pid").GetInt32());
    }

    /// <summary>All containers under this state root (what an agent adopts after a restart).</summary>
    public async Task<IReadOnlyList<RuncState>> ListAsync(CancellationToken ct)
    {
        var r = await ProcessRunner.CheckedAsync(runc, [.. Global, "list", "--format", "json"], ct, Quick);
        if (string.IsNullOrWhiteSpace(r.Stdout) || r.Stdout.Trim() == "null") return [];
        using var json = JsonDocument.Parse(r.Stdout);
        return json.RootElement.EnumerateArray()
            .Select(c => new RuncState(c.GetProperty("id").GetString()!, c.GetProperty("status").GetString()!, c.GetProperty("pid").GetInt32()))
            .ToList();
    }

    /// <summary>
    /// SIGTERM, then SIGKILL after <paramref name="grace"/> (PID 1 may ignore SIGTERM, as busybox httpd does),
    /// then the container is deleted. Nothing happens when there is no container.
    /// </summary>
    public async Task StopAsync(string id, TimeSpan grace, CancellationToken ct)
    {
        if (await StateAsync(id, ct) is null)
        {
            await ForgetAsync(id, ct);
            return;
        }
        await KillAsync(id, grace, ct);
        // Run with --keep, a stopped container stays until deleted (its shim has read the OOM counter by then).
        var gone = clock.GetUtcNow() + Quick;
        while (clock.GetUtcNow() < gone && await StateAsync(id, ct) is { Status: not "stopped" })
            await Task.Delay(TimeSpan.FromMilliseconds(20), clock, ct);
        await ForgetAsync(id, ct);
    }

    /// <summary>SIGTERM, then SIGKILL once <paramref name="grace"/> passed and it still runs; the container itself stays (stopped).</summary>
    public async Task KillAsync(string id, TimeSpan grace, CancellationToken ct)
    {
        await ProcessRunner.RunAsync(runc, [.. Global, "kill", id, "TERM"], ct, Quick);
        var deadline = clock.GetUtcNow() + grace;
        while (clock.GetUtcNow() < deadline && await StateAsync(id, ct) is { Status: "running" })
            await Task.Delay(TimeSpan.FromMilliseconds(50), clock, ct);
        if (await StateAsync(id, ct) is { Status: "running" })
            await ProcessRunner.RunAsync(runc, [.. Global, "kill", id, "KILL"], ct, Quick);
    }

    /// <summary>How the instance of <paramref name="bundle"/> ended, or null while it runs.</summary>
    public static ExitInfo? Exit(string bundle)
    {
        var file = Path.Combine(bundle, "exit-code");
        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), out var code)) return null;
        return new ExitInfo(code, File.Exists(Path.Combine(bundle, "oom")));
    }
}
