using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Hostile;

namespace Platform.NodeAgent.Tests.Runtime;

public sealed class RuntimeSpecTests
{
    [Fact]
    public void Every_file_system_below_the_hosts_sys_is_masked_in_a_container_bound_to_it()
    {
        string[] mountinfo =
        [
            "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw",
            "23 22 0:6 / /sys/kernel/security rw - securityfs securityfs rw",
            "24 22 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
            "25 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
            "26 22 0:24 / /sys/fs/bpf rw - bpf bpf rw",
            "27 1 0:25 / /proc rw - proc proc rw",
        ];
        var mounts = RuntimeSpec.SysMountsOf(mountinfo);
        Assert.Equal(["/sys/kernel/security", "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/bpf"], mounts);
        var spec = new InstanceSpec
        {
            Id = "x", RootfsPath = "/r", Args = ["true"], HostIdStart = Busybox.HostIdStart, MemoryBytes = 1 << 26, CpuMillicores = 100,
            CgroupsPath = "p/x", NetworkNamespacePath = "/var/run/netns/x", HostSysMounts = mounts,
        };
        var linux = RuntimeSpec.Build(spec, Seccomp.Embedded())["linux"]!;
        var masked = linux["maskedPaths"]!.AsArray().Select(m => m!.GetValue<string>()).ToList();
        Assert.Contains("/sys/kernel/security", masked);
        Assert.Contains("/sys/fs/bpf", masked);
        Assert.DoesNotContain(masked, m => m.StartsWith("/sys/fs/cgroup"));   // covered by the container's own cgroup mount
        Assert.Contains("/sys/fs/cgroup", linux["readonlyPaths"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.NotNull(linux["seccomp"]);
    }
}
