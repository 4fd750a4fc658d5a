using System.Diagnostics;
using System.Formats.Tar;
using Platform.NodeAgent.Images;
using static Platform.NodeAgent.Tests.Images.TestLayers;

namespace Platform.NodeAgent.Tests.Images;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class LayerStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-agent-tests", Guid.NewGuid().ToString("N"));
    private readonly string _outside;
    private readonly LayerStore _store;

    public LayerStoreTests()
    {
        _outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(_outside);
        _store = new LayerStore(Path.Combine(_dir, "cache", "layers"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<string> UnpackAsync(byte[] layer) => _store.UnpackAsync(Digest(layer), new MemoryStream(layer), CancellationToken.None);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_layer_unpacks_into_its_digest_with_files_links_and_modes(bool gzip)
    {
        var layer = Tar(w =>
        {
            Dir(w, "bin/");
            File(w, "bin/busybox", "#!binary", (UnixFileMode)0b111_101_101);
            Link(w, TarEntryType.SymbolicLink, "bin/sh", "busybox");
            Link(w, TarEntryType.SymbolicLink, "bin/abs", "/bin/busybox");
            Link(w, TarEntryType.HardLink, "bin/hard", "bin/busybox");
            File(w, "./etc/motd", "hello");
        }, gzip);
        var path = await UnpackAsync(layer);
        Assert.Equal(_store.PathOf(Digest(layer)), path);
        Assert.Equal("#!binary", await System.IO.File.ReadAllTextAsync(Path.Combine(path, "bin/hard")));
        Assert.Equal("busybox", new FileInfo(Path.Combine(path, "bin/sh")).LinkTarget);
        Assert.Equal("/bin/busybox", new FileInfo(Path.Combine(path, "bin/abs")).LinkTarget);
        Assert.Equal((UnixFileMode)0b111_101_101, System.IO.File.GetUnixFileMode(Path.Combine(path, "bin/busybox")));
        Assert.Equal("hello", await System.IO.File.ReadAllTextAsync(Path.Combine(path, "etc/motd")));
        Assert.True(_store.Contains(Digest(layer)));
    }

    [Fact]
    public async Task A_layer_without_the_end_of_archive_blocks_unpacks()
    {
        var layer = Tar(w => File(w, "a", "x"));
        var trimmed = layer[..^1024];   // what umoci writes: no two zero blocks at the end
        Assert.All(layer[^1024..], b => Assert.Equal(0, b));
        var path = await _store.UnpackAsync(Digest(trimmed), new MemoryStream(trimmed), CancellationToken.None);
        Assert.Equal("x", await System.IO.File.ReadAllTextAsync(Path.Combine(path, "a")));
    }

    [Fact]
    public async Task A_layer_ending_right_after_its_last_file_or_inside_its_padding_unpacks_as_with_go()
    {
        var layer = Tar(w => { File(w, "a", "first"); File(w, "b", "xyz"); });
        var dataEnd = layer.Length - 1024 - 512 + 3;   // two end blocks, then the padding of b's three bytes
        foreach (var cut in new[] { dataEnd, dataEnd + 100 })
        {
            var trimmed = layer[..cut];
            var path = await _store.UnpackAsync(Digest(trimmed), new MemoryStream(trimmed), CancellationToken.None);
            Assert.Equal("xyz", await System.IO.File.ReadAllTextAsync(Path.Combine(path, "b")));
        }
    }

    [Fact]
    public async Task A_layer_cut_inside_a_file_or_a_header_is_refused_naming_the_digest_and_the_problem()
    {
        var layer = Tar(w => { File(w, "a", "first"); File(w, "b", new string('z', 2000)); });
        var bEnd = layer.Length - 1024 - 48;   // 2000 bytes of b end 48 bytes before the end blocks
        var cutInData = layer[..(bEnd - 700)];
        var e = await Assert.ThrowsAsync<InvalidLayerException>(() => _store.UnpackAsync(Digest(cutInData), new MemoryStream(cutInData), CancellationToken.None));
        Assert.True(e.Message.StartsWith($"Layer {Digest(cutInData)}: the data of 'b' is cut short"), e.Message);

        var firstEntry = Tar(w => File(w, "a", "first"))[..^1024].Length;   // header(s) and padded data of a
        var cutInHeader = layer[..(firstEntry + 100)];
        e = await Assert.ThrowsAsync<InvalidLayerException>(() => _store.UnpackAsync(Digest(cutInHeader), new MemoryStream(cutInHeader), CancellationToken.None));
        Assert.True(e.Message.StartsWith($"Layer {Digest(cutInHeader)}: "), e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_dir, "cache", "layers", "scratch")));
    }

    [Fact]
    public async Task The_root_entry_that_umoci_and_tar_write_is_the_layer_itself()
    {
        var layer = Tar(w => { Dir(w, "/"); Dir(w, "./"); File(w, "./a", "x"); });
        var path = await UnpackAsync(layer);
        Assert.Equal("x", await System.IO.File.ReadAllTextAsync(Path.Combine(path, "a")));
    }

    [Fact]
    public async Task Whiteouts_and_opaque_directories_become_overlay_whiteouts()
    {
        Assert.True(Environment.UserName == "root", "overlay whiteouts need root (mknod, trusted.* xattrs); CI runs as root");
        var layer = Tar(w =>
        {
            Dir(w, "etc/");
            File(w, "etc/.wh.passwd", "");
            Dir(w, "var/cache/");
            File(w, "var/cache/.wh..wh..opq", "");
        });
        var path = await UnpackAsync(layer);
        var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%F %t:%T", Path.Combine(path, "etc/passwd")]) { RedirectStandardOutput = true })!;
        Assert.Equal("character special file 0:0", (await stat.StandardOutput.ReadToEndAsync()).Trim());
        Assert.False(System.IO.File.Exists(Path.Combine(path, "etc/.wh.passwd")));
        var xattr = Process.Start(new ProcessStartInfo("python3", ["-c",
            $"import os; print(os.getxattr('{Path.Combine(path, "var/cache")}', 'trusted.overlay.opaque').decode())"]) { RedirectStandardOutput = true })!;
        Assert.Equal("y", (await xattr.StandardOutput.ReadToEndAsync()).Trim());
    }

    public static TheoryData<string> HostileLayers => ["dotdot", "absolute", "nested-dotdot", "symlink-escape", "write-through-symlink",
        "hardlink-escape", "hardlink-absolute", "hardlink-to-link", "char-device", "block-device"];

    private static byte[] Hostile(string kind) => Tar(w =>
    {
        File(w, "ok.txt", "fine");
        switch (kind)
        {
            case "dotdot": File(w, "../outside/evil", "x"); break;
            case "absolute": File(w, "/tmp/evil", "x"); break;
            case "nested-dotdot": File(w, "a/b/../../../outside/evil", "x"); break;
            case "symlink-escape": Link(w, TarEntryType.SymbolicLink, "up", "../../../../outside"); break;
            case "write-through-symlink":
                Link(w, TarEntryType.SymbolicLink, "root", "/");
                File(w, "root/tmp/evil", "x");
                break;
            case "hardlink-escape": Link(w, TarEntryType.HardLink, "pw", "../../outside/x"); break;
            case "hardlink-absolute": Link(w, TarEntryType.HardLink, "pw", "/etc/passwd"); break;
            case "hardlink-to-link":
                Link(w, TarEntryType.SymbolicLink, "l", "/etc/passwd");
                Link(w, TarEntryType.HardLink, "pw", "l");
                break;
            case "char-device": w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "dev/mem") { DeviceMajor = 1, DeviceMinor = 1 }); break;
            case "block-device": w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "dev/sda") { DeviceMajor = 8, DeviceMinor = 0 }); break;
        }
    });

    [Theory]
    [MemberData(nameof(HostileLayers))]
    public async Task Hostile_layers_are_refused_and_nothing_is_written_outside(string kind)
    {
        System.IO.File.WriteAllText(Path.Combine(_outside, "x"), "host file");
        var layer = Hostile(kind);
        await Assert.ThrowsAsync<HostileLayerException>(() => UnpackAsync(layer));
        Assert.Equal(["x"], Directory.GetFileSystemEntries(_outside).Select(Path.GetFileName));
        Assert.Equal("host file", System.IO.File.ReadAllText(Path.Combine(_outside, "x")));
        Assert.False(System.IO.File.Exists("/tmp/evil"));
        Assert.False(_store.Contains(Digest(layer)));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_dir, "cache", "layers", "scratch")));
    }

    [Fact]
    public async Task A_truncated_layer_leaves_no_half_layer_behind()
    {
        // Content that does not compress, so half the gzip stream holds about half the file: the cut is inside its data.
        // (100 kB of one letter compressed to a few hundred bytes; half of those could hold all of it and stop only
        // before the padding, which is a layer as umoci writes it, accepted — the timestamps in the PAX headers moved
        // the cut from run to run.)
        var layer = Tar(w => File(w, "big", Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(50_000))), gzip: true);
        var truncated = layer[..(layer.Length / 2)];
        await Assert.ThrowsAnyAsync<Exception>(() => _store.UnpackAsync(Digest(layer), new MemoryStream(truncated), CancellationToken.None));
        Assert.False(_store.Contains(Digest(layer)));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_dir, "cache", "layers", "scratch")));
    }

    [Fact]
    public async Task Concurrent_unpacks_of_one_layer_both_succeed_with_one_copy()
    {
        var layer = Tar(w => { for (var i = 0; i < 200; i++) File(w, $"f{i}", new string('y', 5000)); });
        var paths = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => UnpackAsync(layer))));
        Assert.Single(paths.Distinct());
        Assert.Equal(200, Directory.GetFiles(paths[0]).Length);
        Assert.Single(Directory.GetDirectories(Path.Combine(_dir, "cache", "layers", "sha256")));
    }
}
