using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;
using Platform.NodeAgent.Images;

namespace Platform.Api.Tests.Nodes;

/// <summary>The agent's puller against the platform's registry: token auth, digests verified, layers unpacked once.</summary>
[Collection("registry-sqlite")]
public sealed class ImagePullTests(SqliteRegistryFixture f)
{
    private static HttpClient Client(PlatformHost host) => new() { BaseAddress = host.BaseAddress };

    [Fact]
    public async Task The_busybox_base_image_is_pulled_verified_and_unpacked_with_its_defaults()
    {
        var dir = Path.Combine(Path.GetTempPath(), "platform-tests", "pull-" + Guid.NewGuid().ToString("N")[..6]);
        var store = new LayerStore(Path.Combine(dir, "layers"));
        var puller = new ImagePuller(Client(f.Host), store, Path.Combine(dir, "scratch"), "node", f.Developer);
        var image = await puller.PullAsync($"{f.Registry}/library/busybox:latest", CancellationToken.None);
        Assert.Equal(["sh"], image.Cmd);
        Assert.Contains(image.Env, e => e.StartsWith("PATH=", StringComparison.Ordinal));
        var layer = Assert.Single(image.Layers);
        Assert.True(File.Exists(Path.Combine(store.PathOf(layer), "bin", "busybox")));

        // Pinned by digest: the same image; a second pull reuses the unpacked layer.
        var again = await puller.PullAsync($"{f.Registry}/library/busybox@{image.ManifestDigest}", CancellationToken.None);
        Assert.Equal(image.Layers, again.Layers);
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task A_tampered_layer_is_refused_and_nothing_is_unpacked()
    {
        await using var host = new PlatformHost(Provider.Sqlite);
        var admin = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        await host.Admin().PostAsJsonAsync("/api/v1/teams", new { name = "pull" }).ShouldBeAsync(HttpStatusCode.Created);
        await host.Admin().PostAsJsonAsync("/api/v1/teams/pull/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var layer = RandomNumberGenerator.GetBytes(10_000);
        var config = await RegistryHttp.PushBlobAsync(admin, "pull/p/app", Encoding.UTF8.GetBytes("{\"config\":{\"Cmd\":[\"true\"]}}"));
        var layerDigest = await RegistryHttp.PushBlobAsync(admin, "pull/p/app", layer);
        var manifest = JsonSerializer.Serialize(new
        {
            schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = config, size = 27 },
            layers = new[] { new { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = layerDigest, size = layer.Length } },
        });
        (await admin.PutAsync("/v2/pull/p/app/manifests/v1", new StringContent(manifest, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"))).EnsureSuccessStatusCode();

        // Someone with access to the storage flips a byte of the layer.
        var stored = Path.Combine(host.DataDir, "registry", "blobs", "sha256", layerDigest[7..9], layerDigest[7..]);
        var bytes = await File.ReadAllBytesAsync(stored);
        bytes[100] ^= 0xff;
        await File.WriteAllBytesAsync(stored, bytes);

        var dir = Path.Combine(host.DataDir, "agent");
        var store = new LayerStore(Path.Combine(dir, "layers"));
        var puller = new ImagePuller(Client(host), store, Path.Combine(dir, "scratch"), "admin", PlatformHost.AdminToken);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => puller.PullAsync($"{host.BaseAddress.Authority}/pull/p/app:v1", CancellationToken.None));
        Assert.Contains(layerDigest, error.Message);
        Assert.False(store.Contains(layerDigest));
        Assert.Empty(Directory.GetFiles(Path.Combine(dir, "scratch")));
    }
}
