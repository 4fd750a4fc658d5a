using Platform.Host.Linux;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant's instance (in a network name-space made by root, as CNI's are, so it gets the host's /sys
/// bound) tries to write below /sys and to read another instance's cgroup: its memory usage, which tells
/// what a neighbour is doing.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class SysAttackTests : IAsyncLifetime
{
    private Busybox _lab = null!;
    private readonly string _netns = "hsys-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        _lab = await Busybox.CreateAsync();
        await NetworkNamespaces.AddAsync(_netns, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _lab.DisposeAsync();
        await NetworkNamespaces.DeleteAsync(_netns, CancellationToken.None);
    }

    [Fact]
    public async Task An_instance_cannot_write_below_sys_nor_read_another_instances_cgroup_but_sees_its_own_limits()
    {
        var profile = Seccomp.Load(Seccomp.DefaultProfilePath);
        var netns = NetworkNamespaces.PathOf(_netns);
        var victim = "victim-" + Guid.NewGuid().ToString("N")[..6];
        await _lab.StartAsync(victim, _lab.Spec(victim, ["sleep", "60"], profile, netns));
        var victimUsage = Path.Combine(Cgroups.PathOf("memory", _lab.CgroupsPathOf(victim)), "memory.usage_in_bytes");
        Assert.True(File.Exists(victimUsage), victimUsage);   // positive control: the file is there, on the host

        var attacker = "attacker-" + Guid.NewGuid().ToString("N")[..6];
        var script = string.Join("; ",
            $"cat {victimUsage} && echo read-victim-cgroup",
            $"cat /sys/fs/cgroup/memory/{_lab.CgroupParent}/{victim}/memory.usage_in_bytes && echo read-victim-relative",
            "ls /sys/fs/cgroup/memory | grep -q victim && echo listed-victim",
            "mkdir /sys/fs/cgroup/memory/escape && echo made-cgroup",
            "mkdir /sys/fs/cgroup/tenant && echo wrote-cgroup-tmpfs",
            "echo 1 > /sys/fs/cgroup/pids/pids.max && echo wrote-own-pids-max",
            "echo 0 > /sys/kernel/mm/ksm/run && echo wrote-sysfs",
            "mkdir /sys/tenant && echo made-sysfs-folder",
            "echo own-limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)",
            "echo x > /tmp/probe && echo wrote-tmp",
            "grep ' /sys' /proc/self/mountinfo; echo done");
        var output = await _lab.RunAsync(attacker, script, profile, netns);

        Assert.Contains("done", output);
        foreach (var refused in new[] { "read-victim-cgroup", "read-victim-relative", "listed-victim", "made-cgroup", "wrote-cgroup-tmpfs", "wrote-own-pids-max", "wrote-sysfs", "made-sysfs-folder" })
            Assert.False(output.Contains(refused), $"{refused}: {output}");
        Assert.True(output.Contains("wrote-tmp"), output);   // positive control: the same write works outside /sys
        Assert.True(output.Contains($"own-limit={64L * 1024 * 1024}"), output);   // its own limit stays visible

        // Read-only all the way down: every mount a path at or below /sys reaches in the container is read-only.
        var sysMounts = Reachable(output.Split('\n')).Where(m => m.Point == "/sys" || m.Point.StartsWith("/sys/")).ToList();
        Assert.Contains(sysMounts, m => m.Point == "/sys");
        Assert.Contains(sysMounts, m => m.Point == "/sys/fs/cgroup/memory");
        foreach (var m in sysMounts) Assert.True(m.Options.Split(',').Contains("ro"), $"{m.Point} is mounted {m.Options}: {output}");
    }

    private sealed record MountLine(string Id, string Parent, string Point, string Options);

    /// <summary>
    /// The mounts of a mountinfo table a path can reach: not covered by a later mount on the same point (the host's
    /// hierarchies that runc's mounts lie over stay in the table, locked and out of reach), below a reachable parent.
    /// </summary>
    private static List<MountLine> Reachable(IEnumerable<string> mountinfo)
    {
        var all = mountinfo.Select(l => l.Split(' ')).Where(f => f.Length > 6 && f.Contains("-"))
            .Select(f => new MountLine(f[0], f[1], f[4], f[5])).ToList();
        var byId = all.ToDictionary(m => m.Id);
        bool Covered(MountLine m) => all.Any(o => o.Parent == m.Id && o.Point == m.Point);
        // A cover (a mount on its parent's own point) is reached where its parent would have been.
        bool ParentReached(MountLine m) => !byId.TryGetValue(m.Parent, out var p) || (p.Point == m.Point ? ParentReached(p) : Reached(p));
        bool Reached(MountLine m) => !Covered(m) && ParentReached(m);
        return all.Where(Reached).ToList();
    }
}
