using System.Text.Json;
using Platform.Host.Processes;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Runtime;

namespace Platform.NodeAgent.Tests.Images;

/// <summary>
/// Layers that containerd accepts run here too: Debian's umoci 0.4.7 <c>insert</c> of a single file writes a layer
/// that ends right after the file's data (no padding, no end blocks). Go's archive/tar reads it; so must the agent.
/// Built with the real umoci, unpacked by the layer store and run by runc.
/// </summary>
public sealed class UmociLayerTests : IAsyncLifetime
{
    private const uint HostIdStart = 210_000;
    private readonly string _dir = Path.Combine("/var/tmp", "platform-umoci-tests", Guid.NewGuid().ToString("N")[..8]);
    private readonly Runc _runc;

    public UmociLayerTests() => _runc = new Runc(Path.Combine(_dir, "state"));

    public Task InitializeAsync()
    {
        Assert.True(Environment.UserName == "root", "runc and overlay need root; CI runs as root");
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var c in await _runc.ListAsync(CancellationToken.None))
            await _runc.StopAsync(c.Id, TimeSpan.Zero, CancellationToken.None);
        await ProcessRunner.RunAsync("rm", ["-rf", "--one-file-system", "--", _dir], CancellationToken.None);
    }

    private static Task Run(string file, params string[] args) => ProcessRunner.CheckedAsync(file, args, CancellationToken.None, TimeSpan.FromSeconds(60));

    /// <summary>An OCI layout with a busybox layer and, on top, a layer umoci made of one file; returns the layer blobs, bottom first.</summary>
    private async Task<List<string>> UmociImageAsync()
    {
        var rootfs = Path.Combine(_dir, "src");
        foreach (var d in new[] { "bin", "proc", "dev", "sys", "tmp" }) Directory.CreateDirectory(Path.Combine(rootfs, d));
        File.Copy("/bin/busybox", Path.Combine(rootfs, "bin", "busybox"));
        foreach (var applet in new[] { "sh", "cat" }) File.CreateSymbolicLink(Path.Combine(rootfs, "bin", applet), "busybox");
        var hello = Path.Combine(_dir, "hello.txt");
        await File.WriteAllTextAsync(hello, "hello from umoci\n");   // 17 bytes: the layer ends 495 bytes short of a block
        var layout = Path.Combine(_dir, "oci");
        await Run("umoci", "init", "--layout", layout);
        await Run("umoci", "new", "--image", layout + ":t");
        await Run("umoci", "insert", "--rootless", "--image", layout + ":t", rootfs, "/");
        await Run("umoci", "insert", "--rootless", "--image", layout + ":t", hello, "/hello.txt");
        string Blob(string digest) => Path.Combine(layout, "blobs", "sha256", digest[7..]);
        using var index = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(layout, "index.json")));
        var manifest = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        using var m = JsonDocument.Parse(await File.ReadAllTextAsync(Blob(manifest)));
        return m.RootElement.GetProperty("layers").EnumerateArray().Select(l => Blob(l.GetProperty("digest").GetString()!)).ToList();
    }

    [Fact]
    public async Task A_layer_umoci_ends_right_after_its_last_file_unpacks_and_a_container_runs_from_it()
    {
        var blobs = await UmociImageAsync();
        var top = blobs[^1];
        // The layer really is the awkward kind: its tar stream stops inside a block, and GNU tar gives up on it.
        var tarBytes = (await ProcessRunner.CheckedAsync("sh", ["-c", "zcat \"$1\" | wc -c", "sh", top], CancellationToken.None)).Stdout.Trim();
        Assert.Equal(512 + 17, long.Parse(tarBytes));
        var gnu = await ProcessRunner.RunAsync("tar", ["-xzf", top, "-C", Directory.CreateDirectory(Path.Combine(_dir, "gnu")).FullName], CancellationToken.None);
        Assert.NotEqual(0, gnu.ExitCode);

        var store = new LayerStore(Path.Combine(_dir, "layers"));
        var digests = new List<string>();
        foreach (var blob in blobs)
        {
            var digest = "sha256:" + Path.GetFileName(blob);
            await using (var stream = File.OpenRead(blob)) await store.UnpackAsync(digest, stream, CancellationToken.None);
            digests.Add(digest);
        }
        Assert.Equal("hello from umoci\n", await File.ReadAllTextAsync(Path.Combine(store.PathOf(digests[^1]), "hello.txt")));

        var id = "umoci-" + Guid.NewGuid().ToString("N")[..6];
        var bundle = Path.Combine(_dir, "bundles", id);
        var rootfs = new Rootfs(store, Path.Combine(_dir, "rootfs"));
        var mounted = await rootfs.MountAsync(bundle, digests, HostIdStart, CancellationToken.None);
        try
        {
            await TestContainers.StartAsync(_runc, id, bundle, mounted, ["cat", "/hello.txt"], HostIdStart);
            var exit = await TestContainers.WaitExitAsync(bundle);
            var log = await File.ReadAllTextAsync(Path.Combine(bundle, "output.log"));
            Assert.True(exit.ExitCode == 0, log);
            Assert.Contains("hello from umoci", log);
        }
        finally
        {
            await _runc.StopAsync(id, TimeSpan.Zero, CancellationToken.None);
            await rootfs.UnmountAsync(bundle, CancellationToken.None);
        }
    }
}
