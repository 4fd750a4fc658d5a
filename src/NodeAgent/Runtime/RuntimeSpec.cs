using System.Text.Json.Nodes;

namespace Platform.NodeAgent.Runtime;

/// <summary>What one instance needs from the runtime: its root, process, identity mapping and limits.</summary>
public sealed record InstanceSpec
{
    public required string Id { get; init; }
    public required string RootfsPath { get; init; }
    public required IReadOnlyList<string> Args { get; init; }
    public IReadOnlyList<string> Env { get; init; } = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    public string Cwd { get; init; } = "/";
    public uint Uid { get; init; }
    public uint Gid { get; init; }
    public string Hostname { get; init; } = "app";
    /// <summary>Container root maps to this first host id (one range per project), <see cref="IdRangeSize"/> ids long.</summary>
    public required uint HostIdStart { get; init; }
    public uint IdRangeSize { get; init; } = 65536;
    public required long MemoryBytes { get; init; }
    public required int CpuMillicores { get; init; }
    public int PidsLimit { get; init; } = 512;
    /// <summary>A network name-space prepared by CNI; null gives the container a new, empty one.</summary>
    public string? NetworkNamespacePath { get; init; }
    /// <summary>Cgroup path under each controller (v1) or the unified hierarchy (v2).</summary>
    public required string CgroupsPath { get; init; }
    /// <summary>What is mounted below the host's /sys (masked in a container that gets the host's /sys bound).</summary>
    public IReadOnlyList<string> HostSysMounts { get; init; } = RuntimeSpec.SysMountsOf(File.ReadLines("/proc/self/mountinfo"));
}

/// <summary>
/// The OCI runtime spec (config.json) of an instance, as docs/architecture.md ("Nodes") describes it:
/// pid, mount, uts, ipc, network, cgroup and user name-spaces (container root mapped to an unprivileged
/// host range), memory (no swap), CPU quota and pids limits, Docker's default capabilities without
/// NET_RAW, no new privileges, the default seccomp profile, masked and read-only /proc paths.
/// </summary>
public static class RuntimeSpec
{
    /// <summary>Docker's default capability set, without NET_RAW (no raw sockets: no ICMP spoofing, no ARP games).</summary>
    public static readonly IReadOnlyList<string> Capabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    public const long CpuPeriodMicros = 100_000;

    public static readonly IReadOnlyList<string> MaskedPaths =
    [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ];

    public static readonly IReadOnlyList<string> ReadonlyPaths =
        ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

    /// <summary>The spec; <paramref name="seccomp"/> is required (<see cref="Seccomp.Load"/>): no container runs without one.</summary>
    public static JsonObject Build(InstanceSpec i, JsonObject seccomp)
    {
        JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode)v).ToArray());
        JsonObject Mount(string destination, string type, string source, params string[] options) =>
            new() { ["destination"] = destination, ["type"] = type, ["source"] = source, ["options"] = Strings(options) };
        JsonArray Mapping() => [new JsonObject { ["containerID"] = 0, ["hostID"] = i.HostIdStart, ["size"] = i.IdRangeSize }];

        var namespaces = new JsonArray(
            new JsonObject { ["type"] = "pid" }, new JsonObject { ["type"] = "ipc" }, new JsonObject { ["type"] = "uts" },
            new JsonObject { ["type"] = "mount" }, new JsonObject { ["type"] = "cgroup" }, new JsonObject { ["type"] = "user" },
            i.NetworkNamespacePath is null
                ? new JsonObject { ["type"] = "network" }
                : new JsonObject { ["type"] = "network", ["path"] = i.NetworkNamespacePath });

        var linux = new JsonObject
        {
            ["uidMappings"] = Mapping(),
            ["gidMappings"] = Mapping(),
            ["namespaces"] = namespaces,
            ["cgroupsPath"] = i.CgroupsPath,
            ["resources"] = new JsonObject
            {
                ["devices"] = new JsonArray(new JsonObject { ["allow"] = false, ["access"] = "rwm" }),
                ["memory"] = new JsonObject { ["limit"] = i.MemoryBytes, ["swap"] = i.MemoryBytes },
                ["cpu"] = new JsonObject { ["quota"] = i.CpuMillicores * CpuPeriodMicros / 1000, ["period"] = CpuPeriodMicros },
                ["pids"] = new JsonObject { ["limit"] = i.PidsLimit },
            },
            ["maskedPaths"] = Strings(MaskedPaths),
            ["readonlyPaths"] = Strings(ReadonlyPaths),
            ["seccomp"] = seccomp.DeepClone(),
        };

        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["terminal"] = false,
                ["user"] = new JsonObject { ["uid"] = i.Uid, ["gid"] = i.Gid },
                ["args"] = Strings(i.Args),
                ["env"] = Strings(i.Env),
                ["cwd"] = i.Cwd,
                ["capabilities"] = new JsonObject
                {
                    ["bounding"] = Strings(Capabilities),
                    ["effective"] = Strings(Capabilities),
                    ["permitted"] = Strings(Capabilities),
                },
                ["noNewPrivileges"] = true,
            },
            ["root"] = new JsonObject { ["path"] = i.RootfsPath, ["readonly"] = false },
            ["hostname"] = i.Hostname,
            ["mounts"] = new JsonArray(
                Mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
                Mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
                Mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"),
                Mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
                Mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev")),
            ["linux"] = linux,
        };
        var mounts = spec["mounts"]!.AsArray();
        if (i.NetworkNamespacePath is null)
        {
            mounts.Add(Mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"));
        }
        else
        {
            // A fresh sysfs needs the network name-space to belong to the container's user name-space;
            // CNI's does not (it is made by root first), so /sys is the host's, bound read-only, as
            // rootless Podman does. runc 1.1.5 makes only the top of a recursive bind read-only (no `rro`),
            // so every file system mounted below the host's /sys is masked (a read-only empty tmpfs), and
            // the host's cgroup tree is covered by the container's own below.
            mounts.Add(Mount("/sys", "bind", "/sys", "rbind", "nosuid", "noexec", "nodev", "ro"));
            var masked = linux["maskedPaths"]!.AsArray();
            foreach (var sub in i.HostSysMounts.Where(m => !IsBelow(m, "/sys/fs/cgroup") && !MaskedPaths.Contains(m)))
                masked.Add(sub);
        }
        // The container's own cgroups only, read-only: runc mounts a tmpfs on /sys/fs/cgroup and, inside the cgroup
        // name-space, each hierarchy rooted at the container's cgroup. Other instances' cgroups (their usage and
        // limits) are not in it; the container's own limits are, for runtimes that size themselves by them (.NET, the JVM).
        // runc leaves the tmpfs under those hierarchies writable (owned by container root): read-only too.
        mounts.Add(Mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"));
        linux["readonlyPaths"]!.AsArray().Add("/sys/fs/cgroup");
        return spec;
    }

    private static bool IsBelow(string path, string folder) => path == folder || path.StartsWith(folder + "/", StringComparison.Ordinal);

    /// <summary>Mount points strictly below /sys in a mountinfo table (its fifth field); escaped (unusual) names are skipped.</summary>
    public static IReadOnlyList<string> SysMountsOf(IEnumerable<string> mountinfo) =>
        mountinfo.Select(l => l.Split(' ')).Where(f => f.Length > 4).Select(f => f[4])
            .Where(p => p.StartsWith("/sys/", StringComparison.Ordinal) && !p.Contains('\\', StringComparison.Ordinal))
            .Distinct().ToList();
}
