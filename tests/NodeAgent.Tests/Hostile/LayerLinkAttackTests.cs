using System.Formats.Tar;
using Platform.Host.Processes;
using Platform.NodeAgent.Images;
using static Platform.NodeAgent.Tests.Images.TestLayers;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// A tenant pushes a layer whose entries try to make the root agent write, chmod, chown, link or white out
/// something on the host through a link an earlier entry planted, or through names that leave the layer.
/// The victim is a folder of the test outside the layer store (one test uses a real host folder); each
/// refusal sits beside the same entry doing its work inside the layer.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class LayerLinkAttackTests : IDisposable
{
    private static readonly UnixFileMode Mode0755 = (UnixFileMode)0b111_101_101;
    private static readonly UnixFileMode Mode0777 = (UnixFileMode)0b111_111_111;
    private const int VictimOwner = 4321;

    private readonly string _dir = Path.Combine("/var/tmp", "platform-layer-attacks", Guid.NewGuid().ToString("N")[..8]);
    private readonly string _victim;
    private readonly LayerStore _store;

    public LayerLinkAttackTests()
    {
        Assert.True(Environment.UserName == "root", "the agent unpacks as root, and so must the attacks; CI runs as root");
        _victim = Path.Combine(_dir, "victim");
        Directory.CreateDirectory(_victim);
        System.IO.File.SetUnixFileMode(_victim, Mode0755);
        System.IO.File.WriteAllText(Path.Combine(_victim, "secret"), "host data");
        Chown(_victim, VictimOwner);
        Chown(Path.Combine(_victim, "secret"), VictimOwner);
        _store = new LayerStore(Path.Combine(_dir, "layers"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void Chown(string path, int id) => ProcessRunner.CheckedAsync("chown", ["-h", $"{id}:{id}", path], CancellationToken.None).GetAwaiter().GetResult();

    private static string Stat(string path, string format = "%a %u:%g") =>
        ProcessRunner.CheckedAsync("stat", ["-c", format, path], CancellationToken.None).GetAwaiter().GetResult().Stdout.Trim();

    private static async Task<string> XattrsAsync(string path) =>
        (await ProcessRunner.CheckedAsync("python3", ["-c", "import os, sys; print(os.listxattr(sys.argv[1], follow_symlinks=False))", path], CancellationToken.None)).Stdout;

    private Task<string> UnpackAsync(byte[] layer) => _store.UnpackAsync(Digest(layer), new MemoryStream(layer), CancellationToken.None);

    private async Task<HostileLayerException> RefusedAsync(byte[] layer)
    {
        var e = await Assert.ThrowsAsync<HostileLayerException>(() => UnpackAsync(layer));
        Assert.True(e.Message.StartsWith($"Layer {Digest(layer)}: refused entry"), e.Message);
        Assert.False(_store.Contains(Digest(layer)));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_dir, "layers", "scratch")));
        return e;
    }

    private void AssertVictimUnchanged()
    {
        Assert.Equal($"755 {VictimOwner}:{VictimOwner}", Stat(_victim));
        Assert.Equal(["secret"], Directory.GetFileSystemEntries(_victim).Select(Path.GetFileName));
        Assert.Equal("host data", System.IO.File.ReadAllText(Path.Combine(_victim, "secret")));
        Assert.Equal($"644 {VictimOwner}:{VictimOwner} 1", Stat(Path.Combine(_victim, "secret"), "%a %u:%g %h"));
    }

    [Fact]
    public async Task A_symlink_to_a_host_folder_then_a_directory_entry_of_its_name_changes_the_layer_not_the_host_folder()
    {
        var layer = Tar(w =>
        {
            Link(w, TarEntryType.SymbolicLink, "x", _victim);
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "x/") { Mode = Mode0777, Uid = 0, Gid = 0 });
        });
        var path = await UnpackAsync(layer);
        AssertVictimUnchanged();
        // Positive control: the directory entry did its work, on the layer's own "x" (the link replaced, as containerd does).
        Assert.Equal("777 0:0 directory", Stat(Path.Combine(path, "x"), "%a %u:%g %F"));
    }

    [Fact]
    public async Task A_symlink_to_a_real_host_folder_then_a_directory_entry_of_its_name_leaves_the_host_folder_mode_and_owner_unchanged()
    {
        var host = Directory.Exists("/usr/local/games") ? "/usr/local/games" : "/usr/local/src";
        var before = Stat(host);
        try
        {
            var layer = Tar(w =>
            {
                Link(w, TarEntryType.SymbolicLink, "games", host);
                w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "games/") { Mode = (UnixFileMode)0b111_101_000, Uid = 1, Gid = 1 });
            });
            var path = await UnpackAsync(layer);
            Assert.Equal(before, Stat(host));
            Assert.Equal("750 1:1", Stat(Path.Combine(path, "games")));
        }
        finally
        {
            // Only if this test failed: put the host folder back as it was.
            var parts = before.Split(' ', ':');
            await ProcessRunner.CheckedAsync("chmod", [parts[0], host], CancellationToken.None);
            await ProcessRunner.CheckedAsync("chown", [$"{parts[1]}:{parts[2]}", host], CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_symlink_to_a_host_folder_then_a_file_through_it_is_refused_and_nothing_is_written_there()
    {
        var layer = Tar(w =>
        {
            Link(w, TarEntryType.SymbolicLink, "x", _victim);
            File(w, "x/evil", "pwned");
        });
        var e = await RefusedAsync(layer);
        Assert.True(e.Message.Contains("'x' on its way is a symbolic link"), e.Message);
        AssertVictimUnchanged();

        // Positive control: the same file below a real folder of the layer is written.
        var path = await UnpackAsync(Tar(w => { Dir(w, "x/"); File(w, "x/evil", "fine"); }));
        Assert.Equal("fine", System.IO.File.ReadAllText(Path.Combine(path, "x", "evil")));
    }

    [Fact]
    public async Task A_relative_symlink_climbing_to_a_host_folder_then_a_file_through_it_is_refused()
    {
        var layer = Tar(w =>
        {
            Dir(w, "a/");
            Link(w, TarEntryType.SymbolicLink, "a/up", "../../../../../../../../.." + _victim);
            File(w, "a/up/evil", "pwned");
        });
        await RefusedAsync(layer);
        AssertVictimUnchanged();
    }

    [Theory]
    [InlineData("../victim/evil")]
    [InlineData("a/../../victim/evil")]
    [InlineData("./../../../victim/evil")]
    public async Task A_name_with_dotdot_is_refused_and_nothing_is_written_outside(string name)
    {
        var e = await RefusedAsync(Tar(w => File(w, name, "pwned")));
        Assert.True(e.Message.Contains("'..' is not allowed"), e.Message);
        AssertVictimUnchanged();
        // Positive control: the same name without the climb lands in the layer.
        var path = await UnpackAsync(Tar(w => File(w, "victim/evil", "fine")));
        Assert.Equal("fine", System.IO.File.ReadAllText(Path.Combine(path, "victim", "evil")));
    }

    [Fact]
    public async Task An_absolute_name_is_refused_and_the_host_path_is_not_written()
    {
        var e = await RefusedAsync(Tar(w => File(w, Path.Combine(_victim, "evil"), "pwned")));
        Assert.True(e.Message.Contains("absolute paths are not allowed"), e.Message);
        AssertVictimUnchanged();
    }

    [Theory]
    [InlineData("absolute")]
    [InlineData("dotdot")]
    [InlineData("through-a-symlink")]
    [InlineData("to-a-symlink")]
    public async Task A_hard_link_to_a_host_file_is_refused_and_the_host_file_keeps_its_one_link(string how)
    {
        var secret = Path.Combine(_victim, "secret");
        var layer = Tar(w =>
        {
            switch (how)
            {
                case "absolute": Link(w, TarEntryType.HardLink, "pw", secret); break;
                case "dotdot": Link(w, TarEntryType.HardLink, "pw", "../../../../../../../.." + secret); break;
                case "through-a-symlink":
                    Link(w, TarEntryType.SymbolicLink, "v", _victim);
                    Link(w, TarEntryType.HardLink, "pw", "v/secret");
                    break;
                case "to-a-symlink":
                    Link(w, TarEntryType.SymbolicLink, "s", secret);
                    Link(w, TarEntryType.HardLink, "pw", "s");
                    break;
            }
        });
        await RefusedAsync(layer);
        AssertVictimUnchanged();

        // Positive control: a hard link to a file of the layer is made, and is the same file.
        var path = await UnpackAsync(Tar(w => { File(w, "v/secret", "layer data"); Link(w, TarEntryType.HardLink, "pw", "v/secret"); }));
        Assert.Equal("layer data", System.IO.File.ReadAllText(Path.Combine(path, "pw")));
        Assert.Equal("2", Stat(Path.Combine(path, "pw"), "%h"));
    }

    [Theory]
    [InlineData("v/.wh.secret")]
    [InlineData("v/.wh..wh..opq")]
    public async Task A_whiteout_below_a_symlink_to_a_host_folder_is_refused_and_the_folder_is_untouched(string whiteout)
    {
        var layer = Tar(w =>
        {
            Link(w, TarEntryType.SymbolicLink, "v", _victim);
            File(w, whiteout, "");
        });
        var e = await RefusedAsync(layer);
        Assert.True(e.Message.Contains("'v' on its way is a symbolic link"), e.Message);
        AssertVictimUnchanged();
        Assert.DoesNotContain("overlay", await XattrsAsync(_victim));

        // Positive control: below a real folder of the layer the whiteout is made.
        var path = await UnpackAsync(Tar(w => { Dir(w, "v/"); File(w, whiteout, ""); }));
        if (whiteout.EndsWith(".opq")) Assert.Contains("trusted.overlay.opaque", await XattrsAsync(Path.Combine(path, "v")));
        else Assert.Equal("character special file 0:0", Stat(Path.Combine(path, "v", "secret"), "%F %t:%T"));
    }

    [Fact]
    public async Task An_owner_beyond_the_ids_a_container_maps_is_refused()
    {
        // Shifted into a project's range, uid 70000 would land in the next project's range on the host.
        var e = await RefusedAsync(Tar(w => File(w, "f", "x", uid: 70000)));
        Assert.True(e.Message.Contains("beyond the 65536 ids"), e.Message);
        var path = await UnpackAsync(Tar(w => File(w, "f", "x", uid: 65534)));
        Assert.Equal("65534:65534", Stat(Path.Combine(path, "f"), "%u:%g"));
    }

    [Fact]
    public async Task A_normal_layer_with_links_inside_unpacks_with_its_owners_and_modes_and_the_links_work()
    {
        var layer = Tar(w =>
        {
            Dir(w, "./");
            Dir(w, "usr/");
            Dir(w, "usr/lib/");
            File(w, "usr/lib/libc.so", "library", uid: 0);
            Link(w, TarEntryType.SymbolicLink, "lib", "usr/lib");
            Link(w, TarEntryType.SymbolicLink, "usr/lib/libc.so.6", "libc.so");
            Link(w, TarEntryType.SymbolicLink, "abs", "/usr/lib/libc.so");
            Link(w, TarEntryType.HardLink, "usr/lib/libc.hard", "usr/lib/libc.so");
            File(w, "usr/bin/su", "setuid", (UnixFileMode)0b100_111_101_101);
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "home/app/") { Mode = (UnixFileMode)0b111_000_000, Uid = 1000, Gid = 1000 });
            File(w, "home/app/data", "mine", uid: 1000);
            w.WriteEntry(new PaxTarEntry(TarEntryType.Fifo, "run/pipe") { Mode = (UnixFileMode)0b110_110_000, Uid = 1000, Gid = 1000 });
        });
        var path = await UnpackAsync(layer);
        Assert.Equal("library", System.IO.File.ReadAllText(Path.Combine(path, "lib", "libc.so")));          // a link to a folder of the layer
        Assert.Equal("library", System.IO.File.ReadAllText(Path.Combine(path, "usr", "lib", "libc.so.6")));
        Assert.Equal("/usr/lib/libc.so", new FileInfo(Path.Combine(path, "abs")).LinkTarget);
        Assert.Equal("library", System.IO.File.ReadAllText(Path.Combine(path, "usr", "lib", "libc.hard")));
        Assert.Equal("4755 0:0", Stat(Path.Combine(path, "usr", "bin", "su")));   // setuid kept (chown before chmod)
        Assert.Equal("700 1000:1000", Stat(Path.Combine(path, "home", "app")));
        Assert.Equal("644 1000:1000", Stat(Path.Combine(path, "home", "app", "data")));
        Assert.Equal("660 1000:1000 fifo", Stat(Path.Combine(path, "run", "pipe"), "%a %u:%g %F"));
    }
}
