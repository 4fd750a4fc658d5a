using Platform.Host.Linux;

namespace Platform.Api.Builds;

/// <summary>What one build may use: memory, CPU, process count and wall-clock time.</summary>
public sealed record BuildLimits(long MemoryMiB, long CpuMillicores, long Pids, long TimeoutSeconds);

/// <summary>
/// The cgroup around one build: <c>/{name}/{build}</c> (every v1 controller, or the v2 hierarchy; see
/// <see cref="Cgroups"/>), holding buildah in its leaf and, by inheritance, every RUN step (a rootless runc makes no cgroups).
/// Memory, CPU and pids limits on it bound the whole build; killing everything in it ends a build whose
/// Api died, orphans included; its OOM counter says a build failed for memory.
/// </summary>
public sealed class BuildCgroup
{
    private BuildCgroup(string name, Guid build) => Path = $"/{name}/{build:N}";

    /// <summary>The build's cgroup (absolute from each hierarchy's root), where the limits are.</summary>
    public string Path { get; }

    /// <summary>The leaf that holds the build's processes (cgroup v2 allows processes only in leaves).</summary>
    private string Steps => Path + "/steps";

    /// <summary>Creates the cgroup with the limits set; throws when cgroups cannot be written (builds need root).</summary>
    public static BuildCgroup Create(string name, Guid build, BuildLimits limits)
    {
        var g = new BuildCgroup(name, build);
        Cgroups.Create(g.Path, new CgroupLimits(limits.MemoryMiB * 1024 * 1024, limits.CpuMillicores, limits.Pids));
        Cgroups.CreateChild(g.Path, "steps");
        return g;
    }

    /// <summary>The cgroup of a build, for cleaning up after a build whose Api died (it may not exist).</summary>
    public static BuildCgroup Existing(string name, Guid build) => new(name, build);

    /// <summary>Whether the cgroup is on this machine (the build ran, or runs, here).</summary>
    public bool Exists => Cgroups.Exists(Path);

    /// <summary>Builds whose cgroup is on this machine: running here, or left by an Api that died.</summary>
    public static IReadOnlySet<Guid> Present(string name) =>
        Cgroups.Children("/" + name).Select(d => Guid.TryParseExact(d, "N", out var g) ? g : Guid.Empty).Where(g => g != Guid.Empty).ToHashSet();

    /// <summary>The files a shell writes its own pid to before it execs the build's command (every controller's procs file).</summary>
    public IEnumerable<string> ProcsFiles => Cgroups.ProcsFiles(Steps);

    /// <summary>
    /// Whether the kernel killed something in the build for memory. v2 counts OOM kills of the whole subtree in
    /// memory.events; v1 counts them only in the cgroup the kill happened in, so there also: the build's limit was hit
    /// (failcnt, or peak usage at the limit) and the step died of SIGKILL.
    /// </summary>
    public bool OomKilled(string error)
    {
        if (Cgroups.OomKilled(Path)) return true;
        if (Cgroups.IsV2) return false;
        try
        {
            var memory = Cgroups.PathOf("memory", Path);
            var hit = File.ReadAllText(System.IO.Path.Combine(memory, "memory.failcnt")).Trim() != "0"
                || Cgroups.ReadLong(System.IO.Path.Combine(memory, "memory.max_usage_in_bytes"))
                    >= Cgroups.ReadLong(System.IO.Path.Combine(memory, "memory.limit_in_bytes")) * 98 / 100;
            return hit && (error.Contains("137", StringComparison.Ordinal) || error.Contains("killed", StringComparison.OrdinalIgnoreCase));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Whether a fork in the build was refused for its pids limit (pids.events counts them; buildah's own processes
    /// count too, so a step at the limit can starve buildah and fail with buildah's error rather than its own).
    /// </summary>
    public bool PidsLimitHit()
    {
        try
        {
            // Counted where the refused fork came from (a child, on v1) or where the limit is, by kernel: the whole subtree is read.
            var top = Cgroups.PathOf("pids", Path);
            return Directory.EnumerateDirectories(top, "*", SearchOption.AllDirectories).Prepend(top)
                .Select(d => System.IO.Path.Combine(d, "pids.events")).Where(File.Exists)
                .Any(f => File.ReadLines(f).Any(l => l.StartsWith("max ", StringComparison.Ordinal) && l[4..].Trim() != "0"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Kills every process in the build's cgroup and its children's, then removes the cgroups (retrying while they empty).</summary>
    public Task KillAndRemoveAsync() => Cgroups.KillAndRemoveAsync(Path, CancellationToken.None);
}
