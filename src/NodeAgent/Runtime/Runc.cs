using System.Diagnostics;
using System.Text.Json;

namespace Platform.NodeAgent.Runtime;

/// <summary>What runc reports of a container.</summary>
public sealed record RuncState(string Id, string Status, int Pid);

/// <summary>How an instance ended: its exit code, and whether the kernel's OOM killer ended it.</summary>
public sealed record ExitInfo(int ExitCode, bool OomKilled)
{
    public string Reason => OomKilled ? "OOMKilled" : ExitCode == 0 ? "Completed" : "Error";
}

/// <summary>
/// runc, driven per instance. Each instance runs under a tiny shim, <c>setsid sh</c>, that waits for
/// <c>runc run</c> and writes its exit code to a file: the shim outlives an agent restart, so the
/// agent adopts running containers and still learns how they ended. A <c>runc events</c> watcher per
/// running container records OOM kills (runc removes the cgroup, and its counters, at exit).
/// The shim also reads the memory cgroup's OOM-kill counter once runc returns (runc runs with
/// <c>--keep</c>, so the cgroup is still there), which catches OOM kills the watcher was too late for.
/// </summary>
public sealed class Runc(string stateRoot, string runc = "runc")
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(30);

    private IEnumerable<string> Global => ["--root", stateRoot];

    // The shim's script is constant; the paths and the command arrive as positional parameters.
    // `runc run --keep` leaves the stopped container and its cgroup in place, so the shim reads the memory
    // cgroup's OOM-kill counter after the exit — no race with a watcher — before recording the exit code.
    private const string ShimScript =
        "log=$1; exitfile=$2; oomfile=$3; shift 3; \"$@\" >>\"$log\" 2>&1 </dev/null; code=$?; "
        + "if [ -n \"$oomfile\" ] && grep -qE '^oom_kill [1-9]' \"$oomfile\" 2>/dev/null; then : >\"${exitfile%/*}/oom\"; fi; "
        + "echo $code >\"$exitfile.tmp\" && mv \"$exitfile.tmp\" \"$exitfile\"";

    /// <summary>Starts the container of <paramref name="bundle"/> detached from the agent; returns once runc reports it running.</summary>
    public async Task StartAsync(string id, string bundle, CancellationToken ct)
    {
        Directory.CreateDirectory(stateRoot);
        var log = Path.Combine(bundle, "output.log");
        var exitFile = Path.Combine(bundle, "exit-code");
        File.Delete(exitFile);
        File.Delete(Path.Combine(bundle, "oom"));
        var pidFile = Path.Combine(bundle, "pid");
        File.Delete(pidFile);
        var psi = new ProcessStartInfo("setsid") { UseShellExecute = false };
        foreach (var a in (string[])["sh", "-c", ShimScript, "shim", log, exitFile, OomCounterFile(bundle) ?? "", runc, .. Global, "run", "--keep", "--pid-file", pidFile, "--bundle", bundle, id])
            psi.ArgumentList.Add(a);
        using (Process.Start(psi)) { }
        // runc writes the pid file once the container exists. Waiting on a file costs nothing, where asking
        // `runc state` every few milliseconds from the start costs a process each time.
        var deadline = DateTime.UtcNow + Quick;
        while (DateTime.UtcNow < deadline && !File.Exists(pidFile) && !File.Exists(exitFile))
            await Task.Delay(2, ct);
        // Then a few `runc state` calls until it runs: the OOM watcher subscribes to a running container
        // (subscribing while it was still "created" missed OOM kills on CI).
        while (DateTime.UtcNow < deadline && File.Exists(pidFile) && !File.Exists(exitFile)
               && await StateAsync(id, ct) is { Status: not "running" and not "stopped" })
            await Task.Delay(2, ct);
        if (!File.Exists(exitFile) && await StateAsync(id, ct) is { Status: "running" })
            WatchEvents(id, bundle);
    }

    /// <summary>The file of the container's memory cgroup that counts OOM kills (v1 memory.oom_control, v2 memory.events).</summary>
    private static string? OomCounterFile(string bundle)
    {
        try
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")));
            if (!config.RootElement.TryGetProperty("linux", out var linux) || !linux.TryGetProperty("cgroupsPath", out var p)) return null;
            var path = p.GetString()!;
            return CgroupStats.IsV2
                ? Path.Combine(CgroupStats.PathOf("", path), "memory.events")
                : Path.Combine(CgroupStats.PathOf("memory", path), "memory.oom_control");
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Follows <c>runc events</c> and marks the bundle when the kernel OOM-kills inside the container.
    /// OOM events arrive as they happen; the stats interval is long because the agent reads usage from
    /// the cgroup itself (a 1 s interval cost a stats collection per container per second).
    /// </summary>
    public void WatchEvents(string id, string bundle)
    {
        var psi = new ProcessStartInfo(runc) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[.. Global, "events", "--interval", "10m", id]) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        _ = Task.Run(async () =>
        {
            using (process)
            {
                _ = process.StandardError.ReadToEndAsync();
                while (await process.StandardOutput.ReadLineAsync() is { } line)
                    if (line.Contains("\"type\":\"oom\"", StringComparison.Ordinal))
                        await File.WriteAllTextAsync(Path.Combine(bundle, "oom"), "1");
            }
        });
    }

    public async Task<RuncState?> StateAsync(string id, CancellationToken ct)
    {
        var r = await ProcessRunner.RunAsync(runc, [.. Global, "state", id], Quick, ct);
        if (r.ExitCode != 0) return null;
        using var json = JsonDocument.Parse(r.Stdout);
        return new RuncState(id, json.RootElement.GetProperty("status").GetString()!, json.RootElement.GetProperty("pid").GetInt32());
    }

    /// <summary>All containers under this state root (what an agent adopts after a restart).</summary>
    public async Task<IReadOnlyList<RuncState>> ListAsync(CancellationToken ct)
    {
        var r = await ProcessRunner.CheckedAsync(runc, [.. Global, "list", "--format", "json"], Quick, ct);
        if (string.IsNullOrWhiteSpace(r.Stdout) || r.Stdout.Trim() == "null") return [];
        using var json = JsonDocument.Parse(r.Stdout);
        return json.RootElement.EnumerateArray()
            .Select(c => new RuncState(c.GetProperty("id").GetString()!, c.GetProperty("status").GetString()!, c.GetProperty("pid").GetInt32()))
            .ToList();
    }

    /// <summary>SIGTERM, then SIGKILL after <paramref name="grace"/> (PID 1 may ignore SIGTERM, as busybox httpd does).</summary>
    public async Task StopAsync(string id, TimeSpan grace, CancellationToken ct)
    {
        await ProcessRunner.RunAsync(runc, [.. Global, "kill", id, "TERM"], Quick, ct);
        var deadline = DateTime.UtcNow + grace;
        while (DateTime.UtcNow < deadline && await StateAsync(id, ct) is { Status: "running" })
            await Task.Delay(50, ct);
        if (await StateAsync(id, ct) is { Status: "running" })
            await ProcessRunner.RunAsync(runc, [.. Global, "kill", id, "KILL"], Quick, ct);
        // Run with --keep, a stopped container stays until deleted (its shim has read the OOM counter by then).
        var gone = DateTime.UtcNow + Quick;
        while (DateTime.UtcNow < gone && await StateAsync(id, ct) is { Status: not "stopped" })
            await Task.Delay(20, ct);
        if (await StateAsync(id, ct) is not null)
            await ProcessRunner.RunAsync(runc, [.. Global, "delete", "--force", id], Quick, ct);
    }

    /// <summary>Removes a stopped container's state (before it runs again under the same id).</summary>
    public Task DeleteAsync(string id, CancellationToken ct) =>
        ProcessRunner.RunAsync(runc, [.. Global, "delete", "--force", id], Quick, ct);

    /// <summary>How the instance of <paramref name="bundle"/> ended, or null while it runs.</summary>
    public static ExitInfo? Exit(string bundle)
    {
        var file = Path.Combine(bundle, "exit-code");
        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), out var code)) return null;
        return new ExitInfo(code, File.Exists(Path.Combine(bundle, "oom")));
    }
}
