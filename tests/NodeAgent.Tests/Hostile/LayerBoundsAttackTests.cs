using System.Text;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Tests.Images;
using static Platform.NodeAgent.Tests.Images.TestLayers;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant pushes an image that is small in the registry (its quota counts compressed bytes) but huge on the node:
/// a gzip bomb, many layers that add up, an enormous config or manifest. The caps are set low here; each refusal
/// names the digest and the setting, leaves nothing behind, and sits beside a pull just under the cap that works.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class LayerBoundsAttackTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly string _dir = Path.Combine("/var/tmp", "platform-bounds-attacks", Guid.NewGuid().ToString("N")[..8]);
    private readonly string _layers;
    private readonly string _scratch;

    public LayerBoundsAttackTests()
    {
        _layers = Path.Combine(_dir, "layers");
        _scratch = Path.Combine(_dir, "scratch");
        _http = _registry.Client();
    }

    private readonly TestRegistry _registry = new();
    private readonly HttpClient _http;

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private ImagePuller Puller(ImageLimits limits, LayerStore? store = null) =>
        new(_http, store ?? new LayerStore(_layers), _scratch, "node", "secret", limits);

    private static byte[] Zeros(string name, long bytes) => Tar(w => File(w, name, new string('\0', (int)bytes)), gzip: true);

    private void AssertNothingLeft(string digest, LayerStore store)
    {
        Assert.False(store.Contains(digest));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_layers, "scratch")));
        Assert.False(System.IO.File.Exists(LayerStore.SizeFileOf(_layers, digest[7..])));
        Assert.Empty(Directory.Exists(_scratch) ? Directory.GetFileSystemEntries(_scratch) : []);
    }

    [Fact]
    public async Task A_gzip_bomb_stops_at_the_layer_cap_naming_the_digest_and_the_cap_and_leaves_nothing()
    {
        var store = new LayerStore(_layers, maxLayerBytes: MiB);
        var bomb = Zeros("zeros", 16 * MiB);
        Assert.True(bomb.Length < 64 * 1024, $"the bomb is {bomb.Length} bytes compressed");
        var e = await Assert.ThrowsAsync<InvalidLayerException>(() => store.UnpackAsync(Digest(bomb), new MemoryStream(bomb), CancellationToken.None));
        Assert.True(e.Message.StartsWith($"Layer {Digest(bomb)}: "), e.Message);
        Assert.True(e.Message.Contains($"more than {MiB} bytes, the cap set by Agent:MaxLayerBytes"), e.Message);
        AssertNothingLeft(Digest(bomb), store);

        // Positive control: the same kind of layer under the cap unpacks, and its expanded size is recorded.
        var fine = Zeros("zeros", MiB / 2);
        var path = await store.UnpackAsync(Digest(fine), new MemoryStream(fine), CancellationToken.None);
        Assert.Equal(MiB / 2, new FileInfo(Path.Combine(path, "zeros")).Length);
        Assert.InRange(store.SizeOf(Digest(fine)), MiB / 2, MiB / 2 + 4096);
    }

    [Fact]
    public async Task Layers_that_each_fit_but_together_pass_the_image_cap_fail_the_pull_naming_the_layer_and_the_cap()
    {
        var store = new LayerStore(_layers);
        var puller = Puller(new ImageLimits(MaxImageBytes: MiB), store);
        var a = Zeros("a", 600 * 1024);
        var b = Zeros("b", 600 * 1024);

        // Positive control: one layer fits the image cap.
        var small = await puller.PullAsync(_registry.Push("acme/web/app", "small", TestRegistry.Config(), [a]), CancellationToken.None);
        Assert.Equal([Digest(a)], small.Layers);

        // a is already on the node and still counts: a + b is over the cap, and b is the layer that passes it.
        var e = await Assert.ThrowsAsync<InvalidLayerException>(() =>
            puller.PullAsync(_registry.Push("acme/web/app", "big", TestRegistry.Config(), [a, b]), CancellationToken.None));
        Assert.Equal(Digest(b), e.Digest);
        Assert.True(e.Message.Contains("the cap set by Agent:MaxImageBytes"), e.Message);
        AssertNothingLeft(Digest(b), store);
    }

    [Fact]
    public async Task An_oversized_config_blob_fails_the_pull_naming_its_digest_and_the_cap_and_leaves_no_download()
    {
        var puller = Puller(new ImageLimits(MaxConfigBytes: 2048));
        var layer = Zeros("a", 1024);
        var huge = TestRegistry.Config("PAD=" + new string('x', 4096));
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            puller.PullAsync(_registry.Push("acme/web/app", "huge", huge, [layer]), CancellationToken.None));
        Assert.True(e.Message.Contains($"blob {Digest(huge)} of acme/web/app is larger than 2048 bytes, the cap set by Agent:MaxConfigBytes"), e.Message);
        Assert.Empty(Directory.Exists(_scratch) ? Directory.GetFileSystemEntries(_scratch) : []);

        var fine = await puller.PullAsync(_registry.Push("acme/web/app", "fine", TestRegistry.Config("A=b"), [layer]), CancellationToken.None);
        Assert.Equal(["A=b"], fine.Env);
    }

    [Fact]
    public async Task An_oversized_manifest_fails_the_pull_naming_the_cap()
    {
        var puller = Puller(new ImageLimits(MaxManifestBytes: 2048));
        var layer = Zeros("a", 1024);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            puller.PullAsync(_registry.Push("acme/web/app", "huge", TestRegistry.Config(), [layer], annotation: new string('x', 4096)), CancellationToken.None));
        Assert.True(e.Message.Contains("the manifest of acme/web/app:huge is larger than 2048 bytes, the cap set by Agent:MaxManifestBytes"), e.Message);

        var fine = await puller.PullAsync(_registry.Push("acme/web/app", "fine", TestRegistry.Config(), [layer], annotation: "short"), CancellationToken.None);
        Assert.Equal([Digest(layer)], fine.Layers);
    }
}
