namespace Platform.NodeAgent.Runtime;

/// <summary>CPU time and memory of a container's cgroup, on cgroup v1 (these machines) and v2.</summary>
public static class CgroupStats
{
    public const string Root = "/sys/fs/cgroup";
    public static bool IsV2 => File.Exists(Path.Combine(Root, "cgroup.controllers"));

    /// <summary>Total CPU time in nanoseconds and current memory in bytes, or null when the cgroup is gone.</summary>
    public static (long CpuNanos, long MemoryBytes)? Read(string cgroupsPath)
    {
        try
        {
            var relative = cgroupsPath.TrimStart('/');
            if (IsV2)
            {
                var dir = Path.Combine(Root, relative);
                var usec = File.ReadLines(Path.Combine(dir, "cpu.stat")).First(l => l.StartsWith("usage_usec ", StringComparison.Ordinal));
                return (long.Parse(usec[11..]) * 1000, long.Parse(File.ReadAllText(Path.Combine(dir, "memory.current")).Trim()));
            }
            var cpu = long.Parse(File.ReadAllText(Path.Combine(Root, "cpuacct", relative, "cpuacct.usage")).Trim());
            var memory = long.Parse(File.ReadAllText(Path.Combine(Root, "memory", relative, "memory.usage_in_bytes")).Trim());
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
        var relative = cgroupsPath.TrimStart('/');
        if (IsV2) return Directory.Exists(Path.Combine(Root, relative));
        return Directory.GetDirectories(Root).Any(c => Directory.Exists(Path.Combine(c, relative)));
    }
}
