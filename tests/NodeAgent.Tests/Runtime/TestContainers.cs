using System.Text.Json.Nodes;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Runtime;

/// <summary>Real containers for tests: the spec the agent builds, run by runc, in cgroups under <c>platform-tests/</c>.</summary>
internal static class TestContainers
{
    public static readonly JsonObject SeccompProfile = Seccomp.Load(Seccomp.DefaultProfilePath);

    /// <summary>Starts <paramref name="args"/> in <paramref name="rootfs"/> (owned by the range from <paramref name="hostIdStart"/>); returns the bundle.</summary>
    public static Task<string> StartAsync(Runc runc, string id, string bundle, string rootfs, string[] args, uint hostIdStart,
        long memoryMiB = 64, int pids = 64, string? netns = null) =>
        StartAsync(runc, id, bundle, RuntimeSpec.Build(new InstanceSpec
        {
            Id = id, RootfsPath = rootfs, Args = args, HostIdStart = hostIdStart,
            MemoryBytes = memoryMiB * 1024 * 1024, CpuMillicores = 500, PidsLimit = pids, CgroupsPath = $"platform-tests/{id}",
            NetworkNamespacePath = netns,
        }, SeccompProfile));

    /// <summary>Writes <paramref name="spec"/> into <paramref name="bundle"/> and starts it; returns the bundle.</summary>
    public static async Task<string> StartAsync(Runc runc, string id, string bundle, JsonObject spec)
    {
        Directory.CreateDirectory(bundle);
        File.SetUnixFileMode(bundle, (UnixFileMode)0b111_001_001);   // 0711: the mapped root must traverse it
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), spec.ToJsonString());
        await runc.StartAsync(id, bundle, CancellationToken.None);
        return bundle;
    }

    public static async Task<ExitInfo> WaitExitAsync(string bundle, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (Runc.Exit(bundle) is { } exit) return exit;
            await Task.Delay(50);
        }
        throw new TimeoutException("the container did not exit: " + Output(bundle));
    }

    /// <summary>What the container of <paramref name="bundle"/> printed so far (the shim's output log).</summary>
    public static string Output(string bundle)
    {
        var log = Path.Combine(bundle, "output.log");
        return File.Exists(log) ? File.ReadAllText(log) : "";
    }
}
