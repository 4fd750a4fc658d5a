using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Platform.Host.Processes;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Hostile;

namespace Platform.NodeAgent.Tests.Runtime;

/// <summary>
/// Real containers through runc (root, as CI runs): a busybox root file system owned by the mapped
/// id range, the spec RuntimeSpec builds, the default seccomp profile.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RuncTests : IAsyncLifetime
{
    private const uint HostIdStart = 200_000;
    private readonly string _dir = Path.Combine("/var/tmp", "platform-runc-tests", Guid.NewGuid().ToString("N")[..8]);
    private Runc _runc = null!;
    private string _rootfs = "";
    private static readonly JsonObject SeccompProfile = TestContainers.SeccompProfile;

    public async Task InitializeAsync()
    {
        Assert.True(Environment.UserName == "root", "runc tests need root; CI runs as root");
        Directory.CreateDirectory(_dir);
        _runc = new Runc(Path.Combine(_dir, "state"));
        _rootfs = Path.Combine(_dir, "rootfs");
        foreach (var d in new[] { "bin", "proc", "dev", "sys", "tmp", "etc" }) Directory.CreateDirectory(Path.Combine(_rootfs, d));
        File.Copy("/bin/busybox", Path.Combine(_rootfs, "bin", "busybox"));
        Directory.CreateDirectory(Path.Combine(_rootfs, "www"));
        File.WriteAllText(Path.Combine(_rootfs, "www", "index.html"), "hello from the container");
        foreach (var applet in new[] { "sh", "echo", "sleep", "cat", "head", "id", "ls", "grep", "tr", "wc", "test", "[", "httpd", "wget", "hostname", "timeout" })
            File.CreateSymbolicLink(Path.Combine(_rootfs, "bin", applet), "busybox");
        // runc 1.1.5 cannot id-map mounts: the root file system is owned by the mapped range.
        await ProcessRunner.CheckedAsync("chown", ["-R", "-h", $"{HostIdStart}:{HostIdStart}", _rootfs], CancellationToken.None, TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        foreach (var c in await _runc.ListAsync(CancellationToken.None))
            await _runc.StopAsync(c.Id, TimeSpan.Zero, CancellationToken.None);
        Directory.Delete(_dir, recursive: true);
        foreach (var controller in Directory.GetDirectories("/sys/fs/cgroup"))
            if (Directory.Exists(Path.Combine(controller, "platform-tests")))
                try { Directory.Delete(Path.Combine(controller, "platform-tests")); } catch (IOException) { }
    }

    private Task<string> StartAsync(string id, string[] args, long memoryMiB = 64, int pids = 64, string? rootfs = null, string? bundle = null,
        string? netns = null) =>
        TestContainers.StartAsync(_runc, id, bundle ?? Path.Combine(_dir, "bundles", id), rootfs ?? _rootfs, args, HostIdStart, memoryMiB, pids, netns);

    private static Task<ExitInfo> WaitExitAsync(string bundle) => TestContainers.WaitExitAsync(bundle);

    [Fact]
    public async Task A_container_runs_as_root_inside_and_as_the_mapped_id_on_the_host()
    {
        var id = "ids-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = await StartAsync(id, ["sh", "-c", "id -u; sleep 30"]);
        var state = await _runc.StateAsync(id, CancellationToken.None);
        Assert.Equal("running", state?.Status);
        var hostUid = (await ProcessRunner.CheckedAsync("ps", ["-o", "uid=", "-p", state!.Pid.ToString()], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout.Trim();
        Assert.Equal(HostIdStart.ToString(), hostUid);
        await WaitForLogAsync(bundle, "0");
        await _runc.StopAsync(id, TimeSpan.FromSeconds(1), CancellationToken.None);
        var exit = await Busybox.WaitExitAsync(bundle);
        Assert.False(exit.OomKilled);
        Assert.Null(await _runc.StateAsync(id, CancellationToken.None));
    }

    /// <remarks>The hog waits two seconds, so it is killed while it runs rather than at its start (the next test).</remarks>
    [Fact]
    public async Task A_memory_hog_is_killed_and_reported_as_OOMKilled()
    {
        var id = "oom-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = await StartAsync(id, ["sh", "-c", "sleep 2; x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived"], memoryMiB: 32);
        var exit = await Busybox.WaitExitAsync(bundle);
        Assert.Equal((137, "OOMKilled"), (exit.ExitCode, exit.Reason));
        Assert.DoesNotContain("survived", await File.ReadAllTextAsync(Path.Combine(bundle, "output.log")));
    }

    /// <remarks>No sleep: the kill comes while runc is still starting it; the shim reads the cgroup's OOM counter after the exit.</remarks>
    [Fact]
    public async Task An_OOM_kill_right_at_start_is_reported_as_OOMKilled()
    {
        var id = "oom0-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = await StartAsync(id, ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived"], memoryMiB: 32);
        var exit = await Busybox.WaitExitAsync(bundle);
        Assert.Equal(137, exit.ExitCode);
        Assert.Equal("OOMKilled", exit.Reason);
    }

    /// <remarks>
    /// A crash loop restarts the same container id in the same cgroup: nothing of an earlier run (a watcher
    /// woken by the old cgroup's removal that then finds the new one) may mark the next run OOM-killed. CI saw
    /// an app that exits 3 reported OOMKilled. The sleep keeps each run alive past the start, when the agent
    /// used to subscribe a watcher. The positive control: the same loop's last run is a real OOM kill.
    /// </remarks>
    [Fact]
    public async Task A_container_restarted_under_its_id_again_and_again_is_never_reported_OOMKilled_unless_it_was()
    {
        var id = "loop-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = Path.Combine(_dir, "bundles", id);
        for (var run = 0; run < 12; run++)
        {
            await StartAsync(id, ["sh", "-c", "sleep 0.3; exit 3"], bundle: bundle);
            var exit = await WaitExitAsync(bundle);
            Assert.Equal((3, "Error"), (exit.ExitCode, exit.Reason));
        }
        await StartAsync(id, ["sh", "-c", "sleep 0.3; x=$(head -c 200000000 /dev/zero | tr '\\0' x)"], memoryMiB: 32, bundle: bundle);
        var hog = await WaitExitAsync(bundle);
        Assert.Equal((137, "OOMKilled"), (hog.ExitCode, hog.Reason));
    }

    [Fact]
    public async Task A_start_runc_refuses_says_why_and_leaves_nothing_that_blocks_the_next_try()
    {
        var id = "fail-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = Path.Combine(_dir, "bundles", id);
        Directory.CreateDirectory(bundle);
        File.SetUnixFileMode(bundle, (UnixFileMode)0b111_001_001);
        JsonObject Spec() => RuntimeSpec.Build(new InstanceSpec
        {
            Id = id, RootfsPath = _rootfs, Args = ["sh", "-c", "echo second try; sleep 30"], HostIdStart = HostIdStart,
            MemoryBytes = 64 << 20, CpuMillicores = 500, PidsLimit = 64, CgroupsPath = $"platform-tests/{id}",
        }, SeccompProfile);
        var refused = Spec();
        refused["mounts"]!.AsArray().Add(new JsonObject
        {
            ["destination"] = "/data", ["type"] = "bind", ["source"] = Path.Combine(_dir, "no-such-folder"), ["options"] = new JsonArray("rbind", "ro"),
        });
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), refused.ToJsonString());
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => _runc.StartAsync(id, bundle, CancellationToken.None));
        Assert.Contains("runc could not start the container", e.Message);
        Assert.True(e.Message.Contains("no-such-folder"), e.Message + "\n" + await File.ReadAllTextAsync(Path.Combine(bundle, "output.log")));
        Assert.DoesNotContain(await _runc.ListAsync(CancellationToken.None), c => c.Id == id);

        // The same id, a spec that works: it runs (before, every retry failed with "container with given ID already exists").
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), Spec().ToJsonString());
        await _runc.StartAsync(id, bundle, CancellationToken.None);
        Assert.Equal("running", (await _runc.StateAsync(id, CancellationToken.None))?.Status);
        await WaitForLogAsync(bundle, "second try");
        await _runc.StopAsync(id, TimeSpan.Zero, CancellationToken.None);
    }

    [Fact]
    public async Task A_fork_bomb_stops_at_the_pids_limit()
    {
        var id = "pids-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = await StartAsync(id, ["sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; wait"], pids: 16);
        await WaitForLogAsync(bundle, "can't fork");
        await _runc.StopAsync(id, TimeSpan.Zero, CancellationToken.None);
    }

    [Fact]
    public async Task Raw_sockets_and_new_privileges_are_refused_and_proc_sys_is_read_only()
    {
        var id = "caps-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = await StartAsync(id, ["sh", "-c",
            "grep -E 'NoNewPrivs|CapEff' /proc/self/status; echo 1 > /proc/sys/kernel/domainname && echo wrote-proc-sys; [ $(head -c 16 /proc/kcore | wc -c) -gt 0 ] && echo read-kcore; echo done"]);
        var exit = await Busybox.WaitExitAsync(bundle);
        var log = await File.ReadAllTextAsync(Path.Combine(bundle, "output.log"));
        Assert.True(log.Contains("NoNewPrivs:\t1"), log);
        var capEff = Convert.ToUInt64(log.Split('\n').First(l => l.StartsWith("CapEff:")).Split('\t')[1].Trim(), 16);
        Assert.Equal(0UL, capEff & (1UL << 13));   // CAP_NET_RAW
        Assert.Equal(0UL, capEff & (1UL << 21));   // CAP_SYS_ADMIN
        Assert.DoesNotContain("wrote-proc-sys", log);
        Assert.DoesNotContain("read-kcore", log);
        Assert.Contains("done", log);
        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public async Task An_overlay_of_unpacked_layers_honours_whiteouts_and_keeps_writes_in_the_instance()
    {
        static byte[] Layer(Action<System.Formats.Tar.TarWriter> write)
        {
            var ms = new MemoryStream();
            using (var w = new System.Formats.Tar.TarWriter(ms, System.Formats.Tar.TarEntryFormat.Pax, leaveOpen: true)) write(w);
            return ms.ToArray();
        }
        static void Add(System.Formats.Tar.TarWriter w, string name, byte[] content, UnixFileMode mode = (UnixFileMode)0b110_100_100) =>
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content), Mode = mode });
        var bottom = Layer(w =>
        {
            Add(w, "bin/busybox", File.ReadAllBytes("/bin/busybox"), (UnixFileMode)0b111_101_101);
            foreach (var applet in new[] { "sh", "cat", "echo" })
                w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, $"bin/{applet}") { LinkName = "busybox" });
            foreach (var d in new[] { "proc/", "dev/", "sys/", "tmp/" })
                w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.Directory, d) { Mode = (UnixFileMode)0b111_111_111 });
            Add(w, "etc/motd", "base"u8.ToArray());
        });
        var top = Layer(w =>
        {
            Add(w, "etc/.wh.motd", []);
            Add(w, "etc/new", "top"u8.ToArray());
        });
        static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(b));
        var store = new Platform.NodeAgent.Images.LayerStore(Path.Combine(_dir, "layers"));
        await store.UnpackAsync(Digest(bottom), new MemoryStream(bottom), CancellationToken.None);
        await store.UnpackAsync(Digest(top), new MemoryStream(top), CancellationToken.None);
        var rootfs = new Rootfs(store, Path.Combine(_dir, "rootfs-cache"));

        var id = "ovl-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = Path.Combine(_dir, "bundles", id);
        var mounted = await rootfs.MountAsync(bundle, [Digest(bottom), Digest(top)], HostIdStart, CancellationToken.None);
        try
        {
            await StartAsync(id, ["sh", "-c", "cat /etc/motd; cat /etc/new; echo written > /tmp/w"], rootfs: mounted, bundle: bundle);
            var exit = await Busybox.WaitExitAsync(bundle);
            var log = await File.ReadAllTextAsync(Path.Combine(bundle, "output.log"));
            Assert.DoesNotContain("base", log);
            Assert.Contains("top", log);
            Assert.Equal(0, exit.ExitCode);
            var written = Path.Combine(bundle, "upper", "tmp", "w");
            Assert.Equal("written\n", await File.ReadAllTextAsync(written));
            var owner = (await ProcessRunner.CheckedAsync("stat", ["-c", "%u", written], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout.Trim();
            Assert.Equal(HostIdStart.ToString(), owner);
            Assert.False(File.Exists(Path.Combine(store.PathOf(Digest(bottom)), "tmp", "w")));   // the shared layer is untouched
        }
        finally
        {
            await rootfs.UnmountAsync(bundle, CancellationToken.None);
        }
        Assert.False(await Rootfs.IsMountedAsync(mounted, CancellationToken.None));
    }

    [Fact]
    public async Task Instances_get_a_cni_network_and_projects_cannot_reach_each_other_and_teardown_leaves_nothing()
    {
        var suffix = Guid.NewGuid().ToString("N")[..4];
        var network = new Network("/usr/lib/cni", Path.Combine(_dir, "ipam"), bridgePrefix: "plt");
        var projectA = new ProjectNetwork($"plt{suffix}a", "10.231.71.0/24");
        var projectB = new ProjectNetwork($"plt{suffix}b", "10.231.72.0/24");
        var a1 = "neta1-" + suffix;
        var a2 = "neta2-" + suffix;
        var b1 = "netb1-" + suffix;
        var attachA1 = await network.AttachAsync(a1, projectA, 41000 + Random.Shared.Next(1000), 8080, CancellationToken.None);
        var attachA2 = await network.AttachAsync(a2, projectA, null, 8080, CancellationToken.None);
        var attachB1 = await network.AttachAsync(b1, projectB, null, 8080, CancellationToken.None);
        try
        {
            var server = await StartAsync(a1, ["httpd", "-f", "-p", "8080", "-h", "/www"], netns: attachA1.NamespacePath);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
            string? body = null;
            for (var i = 0; i < 20 && body is null; i++)
            {
                try { body = await http.GetStringAsync($"http://{attachA1.Address}:8080/"); }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { await Task.Delay(100); }
            }
            if (body is null)
                Assert.Fail($"no answer from {attachA1.Address}: state {await _runc.StateAsync(a1, CancellationToken.None)}; output: " +
                    await File.ReadAllTextAsync(Path.Combine(server, "output.log")) + "; addresses: " +
                    (await ProcessRunner.RunAsync("ip", ["-n", attachA1.Namespace, "addr"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout
                    + "; listening: " + (await ProcessRunner.RunAsync("ip", ["netns", "exec", attachA1.Namespace, "ss", "-ltnp"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout
                    + "; filter: " + (await ProcessRunner.RunAsync("iptables", ["-w", "-S"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout
                    + "; nat: " + (await ProcessRunner.RunAsync("iptables", ["-w", "-t", "nat", "-S"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout
                    + "; routes: " + (await ProcessRunner.RunAsync("ip", ["route"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout
                    + "; inside: " + (await ProcessRunner.RunAsync("ip", ["netns", "exec", attachA1.Namespace, "busybox", "wget", "-T", "2", "-O-", "http://127.0.0.1:8080/"], CancellationToken.None, TimeSpan.FromSeconds(5))));
            Assert.Equal("hello from the container", body);

            var sameProject = await StartAsync(a2, ["sh", "-c", $"timeout 3 wget -q -O- http://{attachA1.Address}:8080/ && echo reached"], netns: attachA2.NamespacePath);
            var otherProject = await StartAsync(b1, ["sh", "-c", $"timeout 3 wget -q -O- http://{attachA1.Address}:8080/ && echo reached; echo finished"], netns: attachB1.NamespacePath);
            await Busybox.WaitExitAsync(sameProject);
            await Busybox.WaitExitAsync(otherProject);
            Assert.Contains("reached", await File.ReadAllTextAsync(Path.Combine(sameProject, "output.log")));
            var blocked = await File.ReadAllTextAsync(Path.Combine(otherProject, "output.log"));
            Assert.Contains("finished", blocked);
            Assert.DoesNotContain("reached", blocked);
        }
        finally
        {
            foreach (var id in new[] { a1, a2, b1 })
                await _runc.StopAsync(id, TimeSpan.Zero, CancellationToken.None);
            await network.DetachAsync(a1, projectA, attachA1.HostPort, 8080, CancellationToken.None);
            await network.DetachAsync(a2, projectA, null, 8080, CancellationToken.None);
            await network.DetachAsync(b1, projectB, null, 8080, CancellationToken.None);
            await RemoveBridgesAsync(projectA.Bridge, projectB.Bridge);
            await network.Firewall.RemoveAsync(CancellationToken.None);
        }
        var namespaces = (await ProcessRunner.CheckedAsync("ip", ["netns", "list"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout;
        Assert.DoesNotContain(suffix, namespaces);
        var nat = (await ProcessRunner.CheckedAsync("iptables", ["-w", "-t", "nat", "-S"], CancellationToken.None, TimeSpan.FromSeconds(5))).Stdout;
        Assert.DoesNotContain(attachA1.Address, nat);
        Assert.DoesNotContain(a1, nat);
        Assert.DoesNotContain($"dport {attachA1.HostPort}", nat);
        var leases = Directory.GetFiles(Path.Combine(_dir, "ipam"), "10.231.*", SearchOption.AllDirectories);
        Assert.Empty(leases);
    }

    /// <summary>Test hygiene: the bridges and their isolation rules go, so no later run meets a stale route.</summary>
    private static async Task RemoveBridgesAsync(params string[] bridges)
    {
        var t = TimeSpan.FromSeconds(5);
        foreach (var bridge in bridges)
        {
            await ProcessRunner.RunAsync("ip", ["link", "del", bridge], CancellationToken.None, t);
            await ProcessRunner.RunAsync("iptables", ["-w", "-D", Network.IsolationChain, "-i", bridge, "-o", bridge, "-j", "RETURN"], CancellationToken.None, t);
            await ProcessRunner.RunAsync("iptables", ["-w", "-D", Network.IsolationChain, "-i", bridge, "-o", "plt+", "-j", "DROP"], CancellationToken.None, t);
        }
    }

    private static async Task WaitForLogAsync(string bundle, string text)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var log = Path.Combine(bundle, "output.log");
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(log) && (await File.ReadAllTextAsync(log)).Contains(text)) return;
            await Task.Delay(50);
        }
        Assert.Fail($"'{text}' did not appear in the output: {(File.Exists(log) ? await File.ReadAllTextAsync(log) : "(none)")}");
    }
}
