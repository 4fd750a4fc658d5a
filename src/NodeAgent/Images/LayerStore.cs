using System.Formats.Tar;
using System.IO.Compression;
using System.Runtime.InteropServices;

namespace Platform.NodeAgent.Images;

/// <summary>A layer that tries to write outside its root, or carries something a layer must not (a device node).</summary>
public sealed class HostileLayerException(string entry, string reason) : Exception($"Refused layer entry '{entry}': {reason}")
{
    public string Entry { get; } = entry;
}

/// <summary>
/// Unpacks image layers (tar, optionally gzip) into a content-addressed cache,
/// <c>{root}/sha256/{hex}/</c>, ready to be stacked as overlay lower directories.
/// A layer is unpacked into a scratch folder and renamed into place only when complete, so a crash
/// never leaves a half layer under its digest. Hostile entries (<c>..</c>, absolute paths, links
/// leading out of the root, writing through a link, device nodes) refuse the whole layer and
/// nothing is written outside the scratch folder, which is then removed. OCI whiteouts become
/// overlay whiteouts: <c>.wh.name</c> a 0:0 character device, <c>.wh..wh..opq</c> the
/// <c>trusted.overlay.opaque</c> attribute (both need root, as the agent runs).
/// </summary>
public sealed class LayerStore
{
    private readonly string _root;
    private readonly string _scratch;

    public LayerStore(string root)
    {
        _root = Path.GetFullPath(Path.Combine(root, "sha256"));
        _scratch = Path.GetFullPath(Path.Combine(root, "scratch"));
        Directory.CreateDirectory(_root);
        Directory.CreateDirectory(_scratch);
    }

    public string PathOf(string digest) => Path.Combine(_root, Hex(digest));

    public bool Contains(string digest) => Directory.Exists(PathOf(digest));

    private static string Hex(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length == 71 && digest.AsSpan(7).IndexOfAnyExcept("0123456789abcdef") < 0
            ? digest[7..]
            : throw new ArgumentException($"'{digest}' is not a sha256 digest", nameof(digest));

    /// <summary>Unpacks <paramref name="blob"/> (already verified against <paramref name="digest"/> by the puller) unless present.</summary>
    public async Task<string> UnpackAsync(string digest, Stream blob, CancellationToken ct)
    {
        var target = PathOf(digest);
        if (Directory.Exists(target)) return target;
        var work = Path.Combine(_scratch, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            await ExtractAsync(await DecompressedAsync(blob, ct), work, ct);
            try
            {
                Directory.Move(work, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                Directory.Delete(work, recursive: true);   // unpacked concurrently by another pull
            }
            return target;
        }
        catch
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            throw;
        }
    }

    private static async Task<Stream> DecompressedAsync(Stream blob, CancellationToken ct)
    {
        var buffered = new BufferedStream(blob, 1 << 16);
        var magic = new byte[2];
        var read = 0;
        // Peek at the first two bytes without consuming them from the tar reader's point of view.
        var peek = new MemoryStream();
        while (read < 2)
        {
            var n = await buffered.ReadAsync(magic.AsMemory(read, 2 - read), ct);
            if (n == 0) break;
            read += n;
        }
        peek.Write(magic, 0, read);
        peek.Position = 0;
        var whole = new ConcatStream(peek, buffered);
        Stream tar = read == 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new GZipStream(whole, CompressionMode.Decompress) : whole;
        return new EndOfArchiveStream(tar);
    }

    private static async Task ExtractAsync(Stream tar, string root, CancellationToken ct)
    {
        using var reader = new TarReader(tar);
        var rootWithSlash = root + Path.DirectorySeparatorChar;
        while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
        {
            var name = entry.Name;
            var relative = Normalize(name);
            var path = Path.GetFullPath(Path.Combine(root, relative));
            if (path != root && !path.StartsWith(rootWithSlash, StringComparison.Ordinal))
                throw new HostileLayerException(name, "it leads out of the layer");
            EnsureNoLinkOnTheWay(root, path, name);

            var fileName = Path.GetFileName(path);
            if (fileName == ".wh..wh..opq")
            {
                var dir = Path.GetDirectoryName(path)!;
                Directory.CreateDirectory(dir);
                Native.SetXattr(dir, "trusted.overlay.opaque", "y"u8.ToArray());
                continue;
            }
            if (fileName.StartsWith(".wh.", StringComparison.Ordinal))
            {
                var hidden = Path.Combine(Path.GetDirectoryName(path)!, fileName[4..]);
                Directory.CreateDirectory(Path.GetDirectoryName(hidden)!);
                Native.MakeWhiteout(hidden);
                continue;
            }

            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    Directory.CreateDirectory(path);
                    SetMode(path, entry.Mode);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    if (File.Exists(path) || Directory.Exists(path)) Delete(path);
                    await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                        if (entry.DataStream is { } data) await data.CopyToAsync(file, ct);
                    SetMode(path, entry.Mode);
                    break;
                case TarEntryType.SymbolicLink:
                    var link = entry.LinkName;
                    // Absolute targets are resolved inside the container's root at run time; relative
                    // ones must stay inside the layer when resolved from the link's folder.
                    if (!link.StartsWith('/'))
                    {
                        var resolved = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, link));
                        if (resolved != root && !resolved.StartsWith(rootWithSlash, StringComparison.Ordinal))
                            throw new HostileLayerException(name, $"the symbolic link to '{link}' leads out of the layer");
                    }
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    if (File.Exists(path) || Directory.Exists(path) || IsLink(path)) Delete(path);
                    File.CreateSymbolicLink(path, link);
                    break;
                case TarEntryType.HardLink:
                    var linkTarget = Path.GetFullPath(Path.Combine(root, Normalize(entry.LinkName)));
                    if (!linkTarget.StartsWith(rootWithSlash, StringComparison.Ordinal))
                        throw new HostileLayerException(name, $"the hard link to '{entry.LinkName}' leads out of the layer");
                    EnsureNoLinkOnTheWay(root, linkTarget, name);
                    if (!File.Exists(linkTarget) || IsLink(linkTarget))
                        throw new HostileLayerException(name, $"the hard link's target '{entry.LinkName}' is not a file of this layer");
                    if (File.Exists(path)) File.Delete(path);
                    Native.HardLink(linkTarget, path);
                    break;
                case TarEntryType.CharacterDevice or TarEntryType.BlockDevice:
                    throw new HostileLayerException(name, "device nodes are not allowed in layers");
                case TarEntryType.Fifo:
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    Native.MakeFifo(path);
                    break;
                default:
                    break;   // pax/GNU metadata entries are consumed by TarReader; others carry nothing to write
            }
        }
    }

    /// <summary>"./a/b" → "a/b"; "/" or "./" → "" (the layer's root, as umoci writes it); refuses other absolute names and any ".." segment.</summary>
    private static string Normalize(string name)
    {
        if (name.Trim('/', '.').Length == 0 && !name.Contains(".."))
            return "";
        if (name.StartsWith('/'))
            throw new HostileLayerException(name, "absolute paths are not allowed");
        var segments = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s != ".").ToList();
        if (segments.Any(s => s == ".."))
            throw new HostileLayerException(name, "'..' is not allowed");
        return string.Join('/', segments);
    }

    /// <summary>Refuses to write through a symbolic link planted by an earlier entry (a classic escape).</summary>
    private static void EnsureNoLinkOnTheWay(string root, string path, string name)
    {
        var dir = Path.GetDirectoryName(path);
        while (dir is not null && dir.Length > root.Length)
        {
            if (IsLink(dir))
                throw new HostileLayerException(name, $"'{Path.GetRelativePath(root, dir)}' on its way is a symbolic link");
            dir = Path.GetDirectoryName(dir);
        }
    }

    /// <summary>Whether <paramref name="path"/> itself is a symbolic link (lstat: a dangling link counts).</summary>
    private static bool IsLink(string path)
    {
        try
        {
            return File.GetAttributes(path).HasFlag(FileAttributes.ReparsePoint);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }
    }

    private static void Delete(string path)
    {
        if (Directory.Exists(path) && !IsLink(path)) Directory.Delete(path, recursive: true);
        else File.Delete(path);
    }

    private static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode);
    }

    /// <summary>A forward-only, read-only stream: the members a reader never uses.</summary>
    private abstract class ReadOnlyStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>
    /// Some writers (umoci among them) end a layer without tar's two zero blocks, which TarReader
    /// needs. When the data ends on a 512-byte boundary, this supplies them; a stream that ends
    /// elsewhere is left truncated and fails as it should (layers are digest-checked before this anyway).
    /// </summary>
    private sealed class EndOfArchiveStream(Stream inner) : ReadOnlyStream
    {
        private long _total;
        private int _padding = -1;
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;   // a zero-length read says nothing about the end of the data
            if (_padding < 0)
            {
                var n = inner.Read(buffer);
                if (n > 0) { _total += n; return n; }
                _padding = _total % 512 == 0 ? 1024 : 0;
            }
            var zeros = Math.Min(_padding, buffer.Length);
            buffer[..zeros].Clear();
            _padding -= zeros;
            return zeros;
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            if (buffer.IsEmpty) return 0;
            if (_padding < 0)
            {
                var n = await inner.ReadAsync(buffer, ct);
                if (n > 0) { _total += n; return n; }
                _padding = _total % 512 == 0 ? 1024 : 0;
            }
            return Read(buffer.Span);
        }
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Reads a prefix stream, then the rest: lets the gzip check peek without seeking.</summary>
    private sealed class ConcatStream(Stream first, Stream second) : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = first.Read(buffer, offset, count);
            return n > 0 ? n : second.Read(buffer, offset, count);
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await first.ReadAsync(buffer, ct);
            return n > 0 ? n : await second.ReadAsync(buffer, ct);
        }
    }
}

internal static partial class Native
{
    private const uint S_IFCHR = 0x2000;
    private const uint S_IFIFO = 0x1000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mknod(string path, uint mode, ulong dev);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string oldpath, string newpath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lsetxattr(string path, string name, byte[] value, nuint size, int flags);

    private static void Check(int rc, string what, string path)
    {
        if (rc != 0) throw new IOException($"{what} '{path}' failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>An overlay whiteout: a character device 0:0.</summary>
    public static void MakeWhiteout(string path) => Check(mknod(path, S_IFCHR, 0), "mknod (whiteout)", path);

    public static void MakeFifo(string path) => Check(mknod(path, S_IFIFO | 0b110_100_100, 0), "mknod (fifo)", path);

    public static void HardLink(string target, string path) => Check(link(target, path), "link", path);

    public static void SetXattr(string path, string name, byte[] value) =>
        Check(lsetxattr(path, name, value, (nuint)value.Length, 0), $"setxattr {name}", path);
}
