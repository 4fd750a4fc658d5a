namespace Platform.NodeAgent.Runtime;

/// <summary>CPU time and memory of a container's cgroup, on cgroup v1 (these machines) and v2.</summary>
public static class CgroupStats
{
    public const string Root = "/sys/fs/cgroup";
    public static bool IsV2 => File.Exists(Path.Combine(Root, "cgroup.controllers"));

    /// <summary>
    /// This process's own cgroup per v1 controller (from /proc/self/cgroup): runc, a child of the agent,
    /// places a relative cgroupsPath under it, and the controllers need not agree (memory often differs).
    /// </summary>
    private static readonly Lazy<Dictionary<string, string>> Own = new(() =>
    {
        var map = new Dictionary<string, string>();
        foreach (var line in File.ReadLines("/proc/self/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            foreach (var controller in parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))
                map[controller.Replace("name=", "")] = parts[2];
        }
        return map;
    });

    /// <summary>The directory of <paramref name="cgroupsPath"/> under a v1 controller (relative paths as runc resolves them).</summary>
    public static string PathOf(string controller, string cgroupsPath) =>
        cgroupsPath.StartsWith('/')
            ? Path.Combine(Root, controller, cgroupsPath.TrimStart('/'))
            : Path.Combine(Root, controller, Own.Value.GetValueOrDefault(controller, "/").TrimStart('/'), cgroupsPath);

    /// <summary>Total CPU time in nanoseconds and current memory in bytes, or null when the cgroup is gone.</summary>
    public static (long CpuNanos, long MemoryBytes)? Read(string cgroupsPath)
    {
        try
        {
            if (IsV2)
            {
                var dir = Path.Combine(Root, (Own.Value.GetValueOrDefault("", "/")).TrimStart('/'), cgroupsPath.TrimStart('/'));
                var usec = File.ReadLines(Path.Combine(dir, "cpu.stat")).First(l => l.StartsWith("usage_usec ", StringComparison.Ordinal));
                return (long.Parse(usec[11..]) * 1000, long.Parse(File.ReadAllText(Path.Combine(dir, "memory.current")).Trim()));
            }
            var cpu = long.Parse(File.ReadAllText(Path.Combine(PathOf("cpuacct", cgroupsPath), "cpuacct.usage")).Trim());
            var memory = long.Parse(File.ReadAllText(Path.Combine(PathOf("memory", cgroupsPath), "memory.usage_in_bytes")).Trim());
            return (cpu, memory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Whether any controller still has the cgroup (teardown must leave none).</summary>
    public static bool Exists(string cgroupsPath)
    {
        if (IsV2) return Directory.Exists(Path.Combine(Root, Own.Value.GetValueOrDefault("", "/").TrimStart('/'), cgroupsPath.TrimStart('/')));
        return Own.Value.Keys.Where(c => c.Length > 0 && Directory.Exists(Path.Combine(Root, c))).Any(c => Directory.Exists(PathOf(c, cgroupsPath)));
    }
}
