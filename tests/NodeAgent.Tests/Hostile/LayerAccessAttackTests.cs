using System.Formats.Tar;
using Platform.Host.Processes;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Runtime;
using static Platform.NodeAgent.Tests.Images.TestLayers;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant ships a setuid-root binary in a layer, hoping an unprivileged local user of the node (or another
/// tenant's escaped process) can run it from the unpacked layer. The layer store and the id-shifted copies are
/// root-only (0700); the data folder above them stays reachable, as the containers' bundles need.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class LayerAccessAttackTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine("/var/tmp", "platform-access-attacks", Guid.NewGuid().ToString("N")[..8]);

    public Task InitializeAsync()
    {
        Assert.True(Environment.UserName == "root", "the agent runs as root, CI too");
        Directory.CreateDirectory(_dir);
        System.IO.File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private static Task<ProcessResult> AsNobodyAsync(params string[] command) =>
        ProcessRunner.RunAsync("runuser", ["-u", "nobody", "--", .. command], CancellationToken.None);

    [Fact]
    public async Task A_setuid_root_file_from_a_layer_is_out_of_reach_of_an_unprivileged_local_user_in_the_store_and_in_the_shifted_copy()
    {
        var layers = new LayerStore(Path.Combine(_dir, "layers"));
        var layer = Tar(w => File(w, "bin/rootshell", "#!/bin/sh\nid\n", (UnixFileMode)0b100_111_101_101));
        var unpacked = await layers.UnpackAsync(Digest(layer), new MemoryStream(layer), CancellationToken.None);
        var suid = Path.Combine(unpacked, "bin", "rootshell");
        Assert.Equal("4755 0:0", (await ProcessRunner.CheckedAsync("stat", ["-c", "%a %u:%g", suid], CancellationToken.None)).Stdout.Trim());
        var shifted = Path.Combine(await new Rootfs(layers, Path.Combine(_dir, "rootfs")).ShiftedLayerAsync(Digest(layer), 300_000, CancellationToken.None), "bin", "rootshell");
        Assert.True(System.IO.File.Exists(shifted));

        // Positive control: nobody reaches the data folder itself (bundles below it must stay reachable).
        var control = await AsNobodyAsync("stat", "-c", "%a", _dir);
        Assert.True(control.ExitCode == 0, control.Stderr);

        foreach (var path in new[] { suid, shifted })
        {
            var stat = await AsNobodyAsync("stat", path);
            Assert.NotEqual(0, stat.ExitCode);
            Assert.True(stat.Stderr.Contains("Permission denied"), stat.Stderr);
            var run = await AsNobodyAsync(path);
            Assert.NotEqual(0, run.ExitCode);
            Assert.True(run.Stderr.Contains("Permission denied"), run.Stderr);
        }
    }
}
