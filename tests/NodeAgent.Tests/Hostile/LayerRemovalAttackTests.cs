using Microsoft.Extensions.Logging.Abstractions;
using Platform.Host.Processes;
using Platform.NodeAgent.Images;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant leaves names that are not UTF-8 (a layer's files, or what its container writes) so that the node can
/// never remove them: .NET's Directory.Delete fails on such names, and the layer would stay on disk for good.
/// The collector removes them byte by byte, never following a link out and never crossing into another mount.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class LayerRemovalAttackTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine("/var/tmp", "platform-removal-attacks", Guid.NewGuid().ToString("N")[..8]);
    private string? _mount;

    public Task InitializeAsync()
    {
        Assert.True(Environment.UserName == "root", "the agent runs as root, CI too");
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_mount is not null) await ProcessRunner.RunAsync("umount", [_mount], CancellationToken.None);
        await ProcessRunner.RunAsync("rm", ["-rf", "--one-file-system", "--", _dir], CancellationToken.None);
    }

    /// <summary>Writes a folder <c>caf\xe9</c> holding a file <c>\xff\xfe</c> below <paramref name="folder"/> (names as raw bytes).</summary>
    private static Task WriteNonUtf8NamesAsync(string folder) => ProcessRunner.CheckedAsync("python3", ["-c",
        "import os, sys; d = os.fsencode(sys.argv[1]) + b'/caf\\xe9'; os.makedirs(d); open(d + b'/\\xff\\xfe', 'w').write('x')", folder], CancellationToken.None);

    private (ImageCollector Collector, string Layer, string Shifted) Layout(string hex)
    {
        var layout = AgentLayout.For(_dir);
        var layer = Path.Combine(layout.LayerFolders, hex);
        var shifted = Path.Combine(layout.ShiftedLayers, "1000000", hex);
        Directory.CreateDirectory(layer);
        Directory.CreateDirectory(shifted);
        return (new ImageCollector(layout, NullLogger.Instance), layer, shifted);
    }

    [Fact]
    public async Task Names_that_are_not_utf8_in_a_layer_and_its_shifted_copy_are_collected_and_a_link_inside_is_not_followed()
    {
        // Positive control: the probe is real, Directory.Delete cannot remove such a tree.
        var probe = Path.Combine(_dir, "probe");
        Directory.CreateDirectory(probe);
        await WriteNonUtf8NamesAsync(probe);
        Assert.ThrowsAny<IOException>(() => Directory.Delete(probe, recursive: true));

        var victim = Path.Combine(_dir, "victim");
        Directory.CreateDirectory(victim);
        await File.WriteAllTextAsync(Path.Combine(victim, "keep"), "host data");
        var (collector, layer, shifted) = Layout(new string('c', 64));
        foreach (var d in new[] { layer, shifted })
        {
            await WriteNonUtf8NamesAsync(d);
            File.CreateSymbolicLink(Path.Combine(d, "out"), victim);
        }
        var now = DateTime.UtcNow;
        Assert.Equal(0, collector.CollectNow([], now));
        Assert.Equal(2, collector.CollectNow([], now + ImageCollector.UnusedGrace));
        Assert.False(Directory.Exists(layer));
        Assert.False(Directory.Exists(shifted));
        Assert.Equal("host data", await File.ReadAllTextAsync(Path.Combine(victim, "keep")));
    }

    [Fact]
    public async Task A_mount_inside_a_layer_folder_is_not_emptied_by_its_removal()
    {
        var (collector, layer, _) = Layout(new string('d', 64));
        var (_, normal, _) = Layout(new string('e', 64));
        _mount = Path.Combine(layer, "mnt");
        Directory.CreateDirectory(_mount);
        await ProcessRunner.CheckedAsync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", _mount], CancellationToken.None);
        await File.WriteAllTextAsync(Path.Combine(_mount, "other"), "another file system");

        var now = DateTime.UtcNow;
        collector.CollectNow([], now);
        // The normal layer goes (positive control), the one with a mount below it is refused and its mount keeps its files.
        Assert.Equal(3, collector.CollectNow([], now + ImageCollector.UnusedGrace));   // the normal layer and both shifted copies
        Assert.False(Directory.Exists(normal));
        Assert.True(Directory.Exists(_mount));
        Assert.Equal("another file system", await File.ReadAllTextAsync(Path.Combine(_mount, "other")));
    }
}
