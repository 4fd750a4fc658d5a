using Microsoft.Extensions.Logging.Abstractions;
using Platform.NodeAgent.Images;

namespace Platform.NodeAgent.Tests.Images;

/// <summary>Unused layers (and their id-shifted copies) go after a grace period; layers in use and fresh ones stay.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ImageCollectionTests : IDisposable
{
    private readonly string _dir = Path.Combine("/var/tmp", "platform-gc-tests", Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Layers_no_instance_uses_are_collected_after_the_grace_period_with_their_shifted_copies()
    {
        var collector = new ImageCollector(AgentLayout.For(_dir), NullLogger.Instance);
        var unused = new string('a', 64);
        var layer = Path.Combine(_dir, "layers", "sha256", unused);
        var shifted = Path.Combine(_dir, "rootfs", "shifted", "1000000", unused);
        var making = Path.Combine(_dir, "layers", "sha256", new string('b', 64) + ".tmp-1234");
        foreach (var d in new[] { layer, shifted, making }) Directory.CreateDirectory(d);

        var now = DateTime.UtcNow;
        Assert.Equal(0, collector.CollectNow([], now));                                            // first seen unused: the grace starts
        Assert.Equal(0, collector.CollectNow([], now + ImageCollector.UnusedGrace / 2));
        Assert.True(Directory.Exists(layer));
        Assert.Equal(2, collector.CollectNow([], now + ImageCollector.UnusedGrace));                // the layer and its shifted copy
        Assert.False(Directory.Exists(layer));
        Assert.False(Directory.Exists(shifted));
        Assert.True(Directory.Exists(making), "a layer being unpacked is never collected");
        Assert.True(Directory.Exists(Path.Combine(_dir, "layers", "sha256")));
        _ = new LayerStore(Path.Combine(_dir, "layers"));   // the store still opens
    }
}
