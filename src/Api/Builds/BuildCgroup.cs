using System.Globalization;

namespace Platform.Api.Builds;

/// <summary>What one build may use: memory, CPU, process count and wall-clock time.</summary>
public sealed record BuildLimits(long MemoryMiB, long CpuMillicores, long Pids, long TimeoutSeconds);

/// <summary>
/// The cgroup around one build: <c>/{name}/{build}</c> in each controller (cgroup v1) or in the unified
/// hierarchy (v2), holding buildah and — through <c>--cgroup-parent</c> — every RUN step's container.
/// Memory, CPU and pids limits on it bound the whole build; killing everything in it ends a build whose
/// Api died, orphans included; its OOM counter says a build failed for memory.
/// </summary>
public sealed class BuildCgroup
{
    private const string Root = "/sys/fs/cgroup";
    private static readonly string[] V1Controllers = ["memory", "pids", "cpu"];
    private readonly List<string> dirs = [];

    public static bool IsV2 => File.Exists(Path.Combine(Root, "cgroup.controllers"));

    /// <summary>
    /// The path buildah is given as <c>--cgroup-parent</c>, absolute from each hierarchy's root: runc runs each
    /// RUN step in exactly that cgroup (and removes it after), a child of the build's, beside the leaf that
    /// holds buildah itself (cgroup v2 allows processes only in leaves).
    /// </summary>
    public string Parent => Build + "/run";

    /// <summary>The build's cgroup, where the limits are.</summary>
    private string Build { get; }

    private BuildCgroup(string name, Guid build)
    {
        Build = $"/{name}/{build:N}";
        if (IsV2) dirs.Add(Root + Build);
        else foreach (var c in V1Controllers) dirs.Add($"{Root}/{c}{Build}");
    }

    /// <summary>Creates the cgroup with the limits set; throws when cgroups cannot be written (builds need root).</summary>
    public static BuildCgroup Create(string name, Guid build, BuildLimits limits)
    {
        var g = new BuildCgroup(name, build);
        if (IsV2)
        {
            var parent = Path.Combine(Root, name);
            Directory.CreateDirectory(parent);
            foreach (var level in new[] { Path.Combine(Root, "cgroup.subtree_control"), Path.Combine(parent, "cgroup.subtree_control") })
                File.WriteAllText(level, "+memory +pids +cpu");
            var dir = g.dirs[0];
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "memory.max"), (limits.MemoryMiB * 1024 * 1024).ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(dir, "memory.swap.max"), "0");
            File.WriteAllText(Path.Combine(dir, "pids.max"), limits.Pids.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(dir, "cpu.max"), $"{limits.CpuMillicores * 100} 100000");
            File.WriteAllText(Path.Combine(dir, "cgroup.subtree_control"), "+memory +pids +cpu");
        }
        else
        {
            foreach (var dir in g.dirs) Directory.CreateDirectory(dir);
            var memory = g.dirs[0];
            File.WriteAllText(Path.Combine(memory, "memory.limit_in_bytes"), (limits.MemoryMiB * 1024 * 1024).ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(g.dirs[1], "pids.max"), limits.Pids.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(g.dirs[2], "cpu.cfs_period_us"), "100000");
            File.WriteAllText(Path.Combine(g.dirs[2], "cpu.cfs_quota_us"), (limits.CpuMillicores * 100).ToString(CultureInfo.InvariantCulture));
        }
        foreach (var dir in g.dirs) Directory.CreateDirectory(Path.Combine(dir, "steps"));
        return g;
    }

    /// <summary>The cgroup of a build, for cleaning up after a build whose Api died (it may not exist).</summary>
    public static BuildCgroup Existing(string name, Guid build) => new(name, build);

    /// <summary>Whether the cgroup is on this machine (the build ran, or runs, here).</summary>
    public bool Exists => dirs.Any(Directory.Exists);

    /// <summary>Builds whose cgroup is on this machine: running here, or left by an Api that died.</summary>
    public static IReadOnlySet<Guid> Present(string name)
    {
        var root = IsV2 ? Path.Combine(Root, name) : Path.Combine(Root, "pids", name);
        if (!Directory.Exists(root)) return new HashSet<Guid>();
        return Directory.EnumerateDirectories(root).Select(d => Guid.TryParseExact(Path.GetFileName(d), "N", out var g) ? g : Guid.Empty)
            .Where(g => g != Guid.Empty).ToHashSet();
    }

    /// <summary>The files a shell writes its own pid to before it execs the build's command (every controller's procs file).</summary>
    public IEnumerable<string> ProcsFiles => dirs.Select(d => Path.Combine(d, "steps", "cgroup.procs"));

    /// <summary>
    /// Whether the kernel killed something in the build for memory. v2 counts OOM kills of the whole subtree in
    /// memory.events; v1 counts them in the step's own cgroup, which runc has removed by now, so there: the
    /// build's limit was hit (failcnt) and the step died of SIGKILL.
    /// </summary>
    public bool OomKilled(string error)
    {
        try
        {
            if (IsV2)
            {
                var events = File.ReadAllLines(Path.Combine(dirs[0], "memory.events"));
                return events.Any(l => l.StartsWith("oom_kill ", StringComparison.Ordinal) && l != "oom_kill 0");
            }
            var memory = dirs[0];
            var hit = File.ReadAllText(Path.Combine(memory, "memory.failcnt")).Trim() != "0"
                || long.Parse(File.ReadAllText(Path.Combine(memory, "memory.max_usage_in_bytes")), CultureInfo.InvariantCulture)
                    >= long.Parse(File.ReadAllText(Path.Combine(memory, "memory.limit_in_bytes")), CultureInfo.InvariantCulture) * 98 / 100;
            var control = File.ReadAllLines(Path.Combine(memory, "memory.oom_control"));
            return control.Any(l => l.StartsWith("oom_kill ", StringComparison.Ordinal) && l != "oom_kill 0")
                || (hit && (error.Contains("137", StringComparison.Ordinal) || error.Contains("killed", StringComparison.OrdinalIgnoreCase)));
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>Kills every process in the build's cgroup and its children's, then removes the cgroups (retrying while they empty).</summary>
    public async Task KillAndRemoveAsync()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var any = false;
            foreach (var dir in dirs.Where(Directory.Exists))
                foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Prepend(dir))
                    foreach (var pid in ReadPids(Path.Combine(sub, "cgroup.procs")))
                    {
                        any = true;
                        try { System.Diagnostics.Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
                    }
            if (!any && TryRemove()) return;
            await Task.Delay(100);
        }
    }

    private bool TryRemove()
    {
        var ok = true;
        foreach (var dir in dirs.Where(Directory.Exists))
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(dir))
                try { Directory.Delete(sub); } catch (IOException) { ok = false; } catch (UnauthorizedAccessException) { ok = false; }
        return ok;
    }

    private static IEnumerable<int> ReadPids(string file)
    {
        string[] lines;
        try { lines = File.ReadAllLines(file); } catch (IOException) { yield break; }
        foreach (var l in lines)
            if (int.TryParse(l, CultureInfo.InvariantCulture, out var pid)) yield return pid;
    }
}
