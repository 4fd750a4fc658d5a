using System.Text.Json.Nodes;
using Platform.Host.Processes;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Runtime;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// Real busybox containers for attack tests: a root file system owned by a mapped id range, the spec
/// <see cref="RuntimeSpec"/> builds with the seccomp profile the agent would use, runc with a state root,
/// cgroup parent and folder of this lab's own (random names, so labs of parallel runs never meet).
/// </summary>
public sealed class Busybox : IAsyncDisposable
{
    public const uint HostIdStart = 300_000;
    private static readonly string[] Applets =
        ["sh", "echo", "sleep", "cat", "head", "grep", "tr", "wc", "test", "[", "httpd", "nc", "printf", "timeout", "unshare", "hostname", "ls", "id", "dd", "yes", "usleep"];

    public string Dir { get; } = Path.Combine("/var/tmp", "platform-hostile-tests", Guid.NewGuid().ToString("N")[..10]);
    public string CgroupParent { get; } = "platform-hostile-" + Guid.NewGuid().ToString("N")[..8];
    public string Rootfs => Path.Combine(Dir, "rootfs");
    public Runc Runc { get; }

    private Busybox() => Runc = new Runc(Path.Combine(Dir, "state"));

    public static async Task<Busybox> CreateAsync()
    {
        Assert.True(Environment.UserName == "root", "attack tests need root; CI runs as root");
        var lab = new Busybox();
        foreach (var d in new[] { "bin", "proc", "dev", "sys", "tmp", "etc", "www" }) Directory.CreateDirectory(Path.Combine(lab.Rootfs, d));
        File.Copy("/bin/busybox", Path.Combine(lab.Rootfs, "bin", "busybox"));
        File.WriteAllText(Path.Combine(lab.Rootfs, "www", "index.html"), "hello from the container");
        foreach (var applet in Applets) File.CreateSymbolicLink(Path.Combine(lab.Rootfs, "bin", applet), "busybox");
        await ProcessRunner.CheckedAsync("chown", ["-R", "-h", $"{HostIdStart}:{HostIdStart}", lab.Rootfs], CancellationToken.None, TimeSpan.FromSeconds(30));
        return lab;
    }

    public string CgroupsPathOf(string id) => $"{CgroupParent}/{id}";

    /// <summary>The spec the agent would write for <paramref name="args"/>; <paramref name="edit"/> may change it (positive controls).</summary>
    public JsonObject Spec(string id, IReadOnlyList<string> args, JsonObject seccomp, string? netns = null, long memoryMiB = 64) =>
        RuntimeSpec.Build(new InstanceSpec
        {
            Id = id, RootfsPath = Rootfs, Args = args, HostIdStart = HostIdStart, MemoryBytes = memoryMiB * 1024 * 1024, CpuMillicores = 500,
            PidsLimit = 64, CgroupsPath = CgroupsPathOf(id), NetworkNamespacePath = netns,
        }, seccomp);

    /// <summary>Starts the container of <paramref name="spec"/>; returns its bundle.</summary>
    public Task<string> StartAsync(string id, JsonObject spec) => TestContainers.StartAsync(Runc, id, Path.Combine(Dir, "bundles", id), spec);

    public static Task<ExitInfo> WaitExitAsync(string bundle, int seconds = 60) => TestContainers.WaitExitAsync(bundle, seconds);

    /// <summary>Runs <paramref name="script"/> to its end in a container and returns what it printed.</summary>
    public async Task<string> RunAsync(string id, string script, JsonObject seccomp, string? netns = null, Action<JsonObject>? edit = null)
    {
        var spec = Spec(id, ["sh", "-c", script], seccomp, netns);
        edit?.Invoke(spec);
        var bundle = await StartAsync(id, spec);
        await WaitExitAsync(bundle);
        return Output(bundle);
    }

    public static string Output(string bundle) => TestContainers.Output(bundle);

    public async ValueTask DisposeAsync()
    {
        foreach (var c in await Runc.ListAsync(CancellationToken.None))
        {
            await Runc.StopAsync(c.Id, TimeSpan.Zero, CancellationToken.None);
            // The shim writes the exit into the bundle after the stop: wait for it, or the folder is deleted under its feet.
            var bundle = Path.Combine(Dir, "bundles", c.Id);
            if (Directory.Exists(bundle))
                try { await WaitExitAsync(bundle, 15); } catch (TimeoutException) { }
        }
        foreach (var parent in Platform.Host.Linux.Cgroups.FoldersOf(CgroupParent))
        {
            if (!Directory.Exists(parent)) continue;
            foreach (var child in Directory.GetDirectories(parent))
                try { Directory.Delete(child); } catch (IOException) { }
            try { Directory.Delete(parent); } catch (IOException) { }
        }
        Directory.Delete(Dir, recursive: true);
    }
}
