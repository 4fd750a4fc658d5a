using System.Globalization;

namespace Platform.Host.Linux;

/// <summary>What a cgroup may use: memory (no swap), CPU (millicores of a 100 ms period) and processes.</summary>
public sealed record CgroupLimits(long MemoryBytes, long CpuMillicores, long Pids);

/// <summary>
/// Cgroups on v1 (one hierarchy per controller, as on these machines) and v2 (one unified hierarchy):
/// where a path lives, what it uses, and one cgroup made with limits, killed and removed. Builds (a
/// cgroup per build) and instances (runc's cgroup per container) both read and write them here.
/// </summary>
public static class Cgroups
{
    public const string Root = "/sys/fs/cgroup";
    public static bool IsV2 => File.Exists(Path.Combine(Root, "cgroup.controllers"));

    /// <summary>The v1 controllers a limited cgroup is made in (memory first: OOM counters live there).</summary>
    public static readonly IReadOnlyList<string> V1Controllers = ["memory", "pids", "cpu", "cpuacct"];

    /// <summary>
    /// This process's own cgroup per v1 controller, and "" for v2 (from /proc/self/cgroup): runc, a child,
    /// places a relative cgroupsPath under it, and the controllers need not agree (memory often differs).
    /// </summary>
    private static readonly Lazy<Dictionary<string, string>> Own = new(() =>
    {
        var map = new Dictionary<string, string>();
        foreach (var line in File.ReadLines("/proc/self/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            if (parts[1].Length == 0) map[""] = parts[2];
            foreach (var controller in parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))
                map[controller.Replace("name=", "")] = parts[2];
        }
        return map;
    });

    /// <summary>The folder of <paramref name="cgroupsPath"/> under a v1 controller, or in the v2 hierarchy when <paramref name="controller"/> is "" (relative paths as runc resolves them).</summary>
    public static string PathOf(string controller, string cgroupsPath)
    {
        var top = controller.Length == 0 || IsV2 ? Root : Path.Combine(Root, controller);
        return cgroupsPath.StartsWith('/')
            ? Path.Combine(top, cgroupsPath.TrimStart('/'))
            : Path.Combine(top, Own.Value.GetValueOrDefault(IsV2 ? "" : controller, "/").TrimStart('/'), cgroupsPath);
    }

    /// <summary>Every folder of <paramref name="cgroupsPath"/>: one per mounted controller on v1, one on v2.</summary>
    public static IEnumerable<string> FoldersOf(string cgroupsPath) => IsV2
        ? [PathOf("", cgroupsPath)]
        : Own.Value.Keys.Where(c => c.Length > 0 && Directory.Exists(Path.Combine(Root, c))).Select(c => PathOf(c, cgroupsPath)).Distinct();

    /// <summary>Whether any controller still has the cgroup.</summary>
    public static bool Exists(string cgroupsPath) => FoldersOf(cgroupsPath).Any(Directory.Exists);

    /// <summary>Total CPU time in nanoseconds and current memory in bytes, or null when the cgroup is gone.</summary>
    public static (long CpuNanos, long MemoryBytes)? Usage(string cgroupsPath)
    {
        try
        {
            if (IsV2)
            {
                var dir = PathOf("", cgroupsPath);
                var usec = File.ReadLines(Path.Combine(dir, "cpu.stat")).First(l => l.StartsWith("usage_usec ", StringComparison.Ordinal));
                return (long.Parse(usec[11..], CultureInfo.InvariantCulture) * 1000, ReadLong(Path.Combine(dir, "memory.current")));
            }
            return (ReadLong(Path.Combine(PathOf("cpuacct", cgroupsPath), "cpuacct.usage")),
                ReadLong(Path.Combine(PathOf("memory", cgroupsPath), "memory.usage_in_bytes")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The file that counts the kernel's OOM kills in a memory cgroup (v1 memory.oom_control, v2 memory.events).</summary>
    public static string OomCounterFile(string cgroupsPath) => IsV2
        ? Path.Combine(PathOf("", cgroupsPath), "memory.events")
        : Path.Combine(PathOf("memory", cgroupsPath), "memory.oom_control");

    /// <summary>Whether the kernel OOM-killed something in the cgroup (a line <c>oom_kill N</c> with N &gt; 0).</summary>
    public static bool OomKilled(string cgroupsPath)
    {
        try
        {
            return File.ReadAllLines(OomCounterFile(cgroupsPath)).Any(l => l.StartsWith("oom_kill ", StringComparison.Ordinal) && l != "oom_kill 0");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Names of the child cgroups of an absolute path (e.g. the builds on this machine).</summary>
    public static IEnumerable<string> Children(string absolutePath)
    {
        var dir = IsV2 ? PathOf("", absolutePath) : PathOf("pids", absolutePath);
        return Directory.Exists(dir) ? Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>() : [];
    }

    /// <summary>
    /// Makes the absolute cgroup <paramref name="path"/> with <paramref name="limits"/> (every controller on v1;
    /// on v2 the controllers enabled down to it); throws when cgroups cannot be written (it needs root).
    /// </summary>
    public static void Create(string path, CgroupLimits limits)
    {
        string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
        if (IsV2)
        {
            var dir = PathOf("", path);
            // Enable the controllers on every level above it (processes live only in leaves on v2).
            var level = Root;
            foreach (var part in path.Trim('/').Split('/'))
            {
                File.WriteAllText(Path.Combine(level, "cgroup.subtree_control"), "+memory +pids +cpu");
                level = Path.Combine(level, part);
                Directory.CreateDirectory(level);
            }
            File.WriteAllText(Path.Combine(dir, "memory.max"), Text(limits.MemoryBytes));
            File.WriteAllText(Path.Combine(dir, "memory.swap.max"), "0");
            File.WriteAllText(Path.Combine(dir, "pids.max"), Text(limits.Pids));
            File.WriteAllText(Path.Combine(dir, "cpu.max"), $"{limits.CpuMillicores * 100} 100000");
            File.WriteAllText(Path.Combine(dir, "cgroup.subtree_control"), "+memory +pids +cpu");
            return;
        }
        foreach (var c in V1Controllers) Directory.CreateDirectory(PathOf(c, path));
        File.WriteAllText(Path.Combine(PathOf("memory", path), "memory.limit_in_bytes"), Text(limits.MemoryBytes));
        File.WriteAllText(Path.Combine(PathOf("pids", path), "pids.max"), Text(limits.Pids));
        File.WriteAllText(Path.Combine(PathOf("cpu", path), "cpu.cfs_period_us"), "100000");
        File.WriteAllText(Path.Combine(PathOf("cpu", path), "cpu.cfs_quota_us"), Text(limits.CpuMillicores * 100));
    }

    /// <summary>Creates a child folder in every controller of an existing cgroup (a leaf for processes, on v2).</summary>
    public static void CreateChild(string path, string child)
    {
        foreach (var dir in FoldersOf(path).Where(Directory.Exists)) Directory.CreateDirectory(Path.Combine(dir, child));
    }

    /// <summary>The files a process writes its pid to, to join <paramref name="path"/> in every controller.</summary>
    public static IEnumerable<string> ProcsFiles(string path) =>
        FoldersOf(path).Where(Directory.Exists).Select(d => Path.Combine(d, "cgroup.procs"));

    /// <summary>Kills every process in the cgroup and below, then removes the folders (retrying while they empty); true when gone.</summary>
    public static async Task<bool> KillAndRemoveAsync(string path, CancellationToken ct = default)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var any = false;
            foreach (var dir in FoldersOf(path).Where(Directory.Exists))
                foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Prepend(dir))
                    foreach (var pid in ReadPids(Path.Combine(sub, "cgroup.procs")))
                    {
                        any = true;
                        try { System.Diagnostics.Process.GetProcessById(pid).Kill(); }
                        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception) { }
                    }
            if (!any && TryRemove(path)) return true;
            await Task.Delay(100, ct);
        }
        return false;
    }

    private static bool TryRemove(string path)
    {
        var ok = true;
        foreach (var dir in FoldersOf(path).Where(Directory.Exists))
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(dir))
                try { Directory.Delete(sub); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { ok = false; }
        return ok;
    }

    private static IEnumerable<int> ReadPids(string file)
    {
        string[] lines;
        try { lines = File.ReadAllLines(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { yield break; }
        foreach (var l in lines)
            if (int.TryParse(l, CultureInfo.InvariantCulture, out var pid)) yield return pid;
    }

    public static long ReadLong(string file) => long.Parse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture);
}
