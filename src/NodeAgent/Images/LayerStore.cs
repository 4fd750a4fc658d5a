using System.Formats.Tar;
using System.IO.Compression;
using System.Runtime.InteropServices;

namespace Platform.NodeAgent.Images;

/// <summary>A layer that cannot be unpacked: the message names its digest and what is wrong with it.</summary>
public class InvalidLayerException(string digest, string problem, Exception? inner = null) : Exception($"Layer {digest}: {problem}", inner)
{
    public string Digest { get; } = digest;
}

/// <summary>A layer that tries to write outside its root, or carries something a layer must not (a device node).</summary>
public sealed class HostileLayerException(string digest, string entry, string reason)
    : InvalidLayerException(digest, $"refused entry '{entry}': {reason}")
{
    public string Entry { get; } = entry;
}

/// <summary>How many bytes a layer may expand to, and the setting that says so (named in the error).</summary>
public sealed record ExpansionLimit(long Bytes, string Setting);

/// <summary>
/// Unpacks image layers (tar, optionally gzip) into a content-addressed cache,
/// <c>{root}/sha256/{hex}/</c>, ready to be stacked as overlay lower directories.
/// A layer is unpacked into a scratch folder and renamed into place only when complete, so a crash
/// never leaves a half layer under its digest. Every entry is written relative to descriptors of the
/// scratch folder with no link followed (<see cref="NoFollow"/>): a link planted by an earlier entry
/// cannot carry a write, a mode or an owner out of the layer. Hostile entries (<c>..</c>, absolute paths,
/// links leading out of the root, writing through a link, hard links to what is not a file of the
/// layer, device nodes, owners beyond a container's 65,536 ids) refuse the whole layer, and the scratch
/// folder is removed. A layer may expand to at most its <see cref="ExpansionLimit"/> (a gzip bomb stops
/// there). OCI whiteouts become overlay whiteouts: <c>.wh.name</c> a 0:0 character device,
/// <c>.wh..wh..opq</c> the <c>trusted.overlay.opaque</c> attribute (both need root, as the agent runs).
/// The store's folder is 0700: layers keep their owners (root's setuid files included), which no local
/// user may reach.
/// </summary>
public sealed class LayerStore
{
    /// <summary>Layer owners must fall in the range a container maps (its root is shifted to a 65,536-id range).</summary>
    private const uint IdsPerContainer = 65536;

    /// <summary>The default cap on one layer's expanded size (Agent:MaxLayerBytes).</summary>
    public const long DefaultMaxLayerBytes = 4L << 30;

    private readonly string _root;
    private readonly string _scratch;
    private readonly string _sizes;
    private readonly ExpansionLimit _limit;

    public LayerStore(string root, long maxLayerBytes = DefaultMaxLayerBytes)
    {
        Directory.CreateDirectory(root);
        File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _root = Path.GetFullPath(Path.Combine(root, "sha256"));
        _scratch = Path.GetFullPath(Path.Combine(root, "scratch"));
        _sizes = Path.GetFullPath(Path.Combine(root, "sizes"));
        _limit = new ExpansionLimit(maxLayerBytes, "Agent:MaxLayerBytes");
        Directory.CreateDirectory(_root);
        Directory.CreateDirectory(_scratch);
        Directory.CreateDirectory(_sizes);
    }

    public string PathOf(string digest) => Path.Combine(_root, Hex(digest));

    public bool Contains(string digest) => Directory.Exists(PathOf(digest));

    /// <summary>Where the expanded size of a layer is kept (beside, not in, the layer: the layer is what the container sees).</summary>
    public static string SizeFileOf(string layersRoot, string hex) => Path.Combine(layersRoot, "sizes", hex);

    /// <summary>
    /// The bytes the unpacked layer <paramref name="digest"/> took as a tar stream; for a layer unpacked before sizes
    /// were recorded, the sum of its files' sizes (recorded then).
    /// </summary>
    public long SizeOf(string digest)
    {
        var file = Path.Combine(_sizes, Hex(digest));
        if (File.Exists(file) && long.TryParse(File.ReadAllText(file), out var size)) return size;
        size = new DirectoryInfo(PathOf(digest))
            .EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Sum(f => f.Length);
        File.WriteAllText(file, size.ToString());
        return size;
    }

    private static string Hex(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length == 71 && digest.AsSpan(7).IndexOfAnyExcept("0123456789abcdef") < 0
            ? digest[7..]
            : throw new ArgumentException($"'{digest}' is not a sha256 digest", nameof(digest));

    /// <summary>Unpacks <paramref name="blob"/> (already verified against <paramref name="digest"/> by the puller) unless present, within the store's cap.</summary>
    public Task<string> UnpackAsync(string digest, Stream blob, CancellationToken ct) => UnpackAsync(digest, blob, _limit, ct);

    /// <summary>
    /// Unpacks within <paramref name="limit"/> (the smaller of it and the store's own cap): a layer that expands beyond it fails
    /// naming the digest and the setting, and leaves nothing on disk. Any other problem also fails as an <see cref="InvalidLayerException"/>.
    /// </summary>
    public async Task<string> UnpackAsync(string digest, Stream blob, ExpansionLimit limit, CancellationToken ct)
    {
        if (limit.Bytes > _limit.Bytes) limit = _limit;
        var target = PathOf(digest);
        if (Directory.Exists(target)) return target;
        var work = Path.Combine(_scratch, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            var tar = new EndOfArchiveStream(new LimitedStream(await DecompressedAsync(blob, ct), limit.Bytes,
                () => new InvalidLayerException(digest, $"it expands to more than {limit.Bytes} bytes, the cap set by {limit.Setting}")));
            await ExtractAsync(digest, tar, work, ct);
            await File.WriteAllTextAsync(Path.Combine(_sizes, Hex(digest)), (tar.RealLength ?? tar.Position).ToString(), ct);
            try
            {
                Directory.Move(work, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                NoFollow.RemoveTree(work);   // unpacked concurrently by another pull
            }
            return target;
        }
        catch (Exception e) when (e is not InvalidLayerException and not OperationCanceledException)
        {
            NoFollow.RemoveTree(work);
            throw new InvalidLayerException(digest, e is EndOfStreamException
                ? "the layer's data ends inside a tar header or a file" : $"it is not a readable tar archive: {e.Message}", e);
        }
        catch
        {
            NoFollow.RemoveTree(work);
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
        return read == 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new GZipStream(whole, CompressionMode.Decompress) : whole;
    }

    private static async Task ExtractAsync(string digest, EndOfArchiveStream tar, string work, CancellationToken ct)
    {
        using var reader = new TarReader(tar);
        using var root = NoFollow.OpenRoot(work);
        long? lastDataEnd = null;
        while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
        {
            var name = entry.Name;
            HostileLayerException Hostile(string reason) => new(digest, name, reason);
            var segments = Normalize(name, Hostile);
            if (entry.Uid is < 0 or >= (int)IdsPerContainer || entry.Gid is < 0 or >= (int)IdsPerContainer)
                throw Hostile($"its owner {entry.Uid}:{entry.Gid} is beyond the {IdsPerContainer} ids a container maps");
            var (uid, gid, mode) = ((uint)entry.Uid, (uint)entry.Gid, (uint)entry.Mode & 0xFFF);
            if (segments.Length == 0)
            {
                if (entry.EntryType == TarEntryType.Directory) SetOwnerAndMode(root, uid, gid, mode);
                continue;   // the layer's root, as umoci and tar write it ("./", "/")
            }
            var leaf = segments[^1];
            using var parent = Walk(root, segments.AsSpan(..^1), Hostile);

            if (leaf == ".wh..wh..opq")
            {
                NoFollow.SetXattr(parent, "trusted.overlay.opaque", "y"u8.ToArray());
                continue;
            }
            if (leaf.StartsWith(".wh.", StringComparison.Ordinal))
            {
                var hidden = leaf[4..];
                if (hidden is "" or "." or "..") throw Hostile("a whiteout must name an entry");
                NoFollow.Remove(parent, hidden);
                NoFollow.MakeNode(parent, hidden, NoFollow.S_IFCHR);
                continue;
            }

            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    // Whatever else has the name goes (a planted link among them): the mode is set on the new directory, never through a link.
                    if (NoFollow.StatOf(parent, leaf)?.Type != NoFollow.S_IFDIR)
                    {
                        NoFollow.Remove(parent, leaf);
                        NoFollow.MakeDirectory(parent, leaf, 0b111_000_000);
                    }
                    using (var dir = NoFollow.OpenDirectory(parent, leaf)) SetOwnerAndMode(dir, uid, gid, mode);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    NoFollow.Remove(parent, leaf);
                    using (var handle = NoFollow.CreateFile(parent, leaf))
                    await using (var file = new FileStream(handle, FileAccess.Write, 1 << 16))
                    {
                        if (entry.DataStream is { } data)
                        {
                            await data.CopyToAsync(file, ct);
                            await file.FlushAsync(ct);
                            lastDataEnd = tar.Position;
                            if (tar.RealLength is { } end && tar.Position > end)
                                throw new InvalidLayerException(digest, $"the data of '{name}' is cut short: the layer ends {tar.Position - end} bytes before the {entry.Length} bytes its header announces");
                        }
                        SetOwnerAndMode(handle, uid, gid, mode);   // the stream closes the descriptor: set before
                    }
                    break;
                case TarEntryType.SymbolicLink:
                    var link = entry.LinkName;
                    // Absolute targets are resolved inside the container's root at run time; relative ones must stay
                    // inside the layer when resolved from the link's folder (nothing on the host should ever follow them out).
                    if (!link.StartsWith('/') && LeavesTheLayer(segments.AsSpan(..^1), link))
                        throw Hostile($"the symbolic link to '{link}' leads out of the layer");
                    NoFollow.Remove(parent, leaf);
                    NoFollow.MakeSymlink(parent, leaf, link);
                    NoFollow.ChangeLinkOwner(parent, leaf, uid, gid);
                    break;
                case TarEntryType.HardLink:
                    var targetSegments = Normalize(entry.LinkName, Hostile);
                    if (targetSegments.Length == 0) throw Hostile("a hard link to the layer's root");
                    using (var target = OpenHardLinkTarget(root, targetSegments, entry.LinkName, Hostile))
                    {
                        NoFollow.Remove(parent, leaf);
                        NoFollow.HardLink(target, parent, leaf);
                    }
                    break;
                case TarEntryType.CharacterDevice or TarEntryType.BlockDevice:
                    throw Hostile("device nodes are not allowed in layers");
                case TarEntryType.Fifo:
                    NoFollow.Remove(parent, leaf);
                    NoFollow.MakeNode(parent, leaf, NoFollow.S_IFIFO | 0b110_000_000);
                    using (var fifo = NoFollow.OpenFifo(parent, leaf)) SetOwnerAndMode(fifo, uid, gid, mode);
                    break;
                default:
                    break;   // pax/GNU metadata entries are consumed by TarReader; others carry nothing to write
            }
        }
        // Like Go's archive/tar (containerd, umoci): a layer may end right after its last file's data, its padding
        // and end blocks missing; ending anywhere else (inside a header) is a truncated layer.
        if (tar.RealLength is { } real && real % 512 != 0 && (lastDataEnd is not { } dataEnd || real < dataEnd || real >= (dataEnd + 511) / 512 * 512))
            throw new InvalidLayerException(digest, $"the layer's data ends inside a tar header (after {real} bytes)");
    }

    /// <summary>Owner first: chown clears the setuid and setgid bits the mode then sets.</summary>
    private static void SetOwnerAndMode(Microsoft.Win32.SafeHandles.SafeFileHandle fd, uint uid, uint gid, uint mode)
    {
        NoFollow.ChangeOwner(fd, uid, gid);
        NoFollow.ChangeMode(fd, mode);
    }

    /// <summary>
    /// Opens (making them when missing, 0755 and root's like tar does) the folders <paramref name="segments"/> below
    /// <paramref name="root"/>, one component at a time with no link followed: a link on the way refuses the layer.
    /// </summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle Walk(Microsoft.Win32.SafeHandles.SafeFileHandle root, ReadOnlySpan<string> segments,
        Func<string, HostileLayerException> hostile)
    {
        var current = NoFollow.OpenDirectory(root, ".");
        for (var i = 0; i < segments.Length; i++)
        {
            try
            {
                NoFollow.MakeDirectory(current, segments[i], 0b111_101_101);
                var next = NoFollow.OpenDirectory(current, segments[i]);
                current.Dispose();
                current = next;
            }
            catch (NoFollow.Failure e) when (e.Errno is NoFollow.ELOOP or NoFollow.ENOTDIR)
            {
                // O_DIRECTORY | O_NOFOLLOW on a link gives ENOTDIR or ELOOP: what is there tells the reason.
                var isLink = NoFollow.StatOf(current, segments[i])?.Type == NoFollow.S_IFLNK;
                current.Dispose();
                var onTheWay = string.Join('/', segments[..(i + 1)].ToArray());
                throw hostile(isLink ? $"'{onTheWay}' on its way is a symbolic link" : $"'{onTheWay}' on its way is not a directory");
            }
            catch
            {
                current.Dispose();
                throw;
            }
        }
        return current;
    }

    /// <summary>A hard link's target: a regular file already unpacked in this layer, reached with no link on the way.</summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenHardLinkTarget(Microsoft.Win32.SafeHandles.SafeFileHandle root, string[] segments,
        string linkName, Func<string, HostileLayerException> hostile)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle target;
        try
        {
            target = NoFollow.OpenPathBeneath(root, string.Join('/', segments));
        }
        catch (NoFollow.Failure e) when (e.Errno is NoFollow.ELOOP or NoFollow.ENOTDIR or NoFollow.ENOENT or NoFollow.EXDEV)
        {
            throw hostile($"the hard link's target '{linkName}' is not a file of this layer ({e.Message})");
        }
        if (NoFollow.StatOf(target).Type != NoFollow.S_IFREG)
        {
            target.Dispose();
            throw hostile($"the hard link's target '{linkName}' is not a file of this layer");
        }
        return target;
    }

    /// <summary>Whether a relative link target, resolved lexically from the link's folder, climbs above the layer's root.</summary>
    private static bool LeavesTheLayer(ReadOnlySpan<string> folder, string link)
    {
        var depth = folder.Length;
        foreach (var part in link.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "..") depth--;
            else if (part != ".") depth++;
            if (depth < 0) return true;
        }
        return false;
    }

    /// <summary>"./a/b" → [a, b]; "/" or "./" → [] (the layer's root, as umoci writes it); refuses other absolute names and any ".." segment.</summary>
    private static string[] Normalize(string name, Func<string, HostileLayerException> hostile)
    {
        if (name.Trim('/', '.').Length == 0 && !name.Contains(".."))
            return [];
        if (name.StartsWith('/'))
            throw hostile("absolute paths are not allowed");
        var segments = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s != ".").ToArray();
        if (segments.Any(s => s == ".."))
            throw hostile("'..' is not allowed");
        if (segments.Any(s => s.Contains('\0')))
            throw hostile("a name may not contain NUL");
        return segments;
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
    /// Some writers (Debian's umoci among them) end a layer without tar's two zero blocks, and after a last file
    /// without its padding, which TarReader needs. At the end of the data this supplies zeros up to the next
    /// 512-byte boundary and the two end blocks; <see cref="RealLength"/> and <see cref="Position"/> let the
    /// reader tell such an ending (accepted, as Go's archive/tar does) from data cut short (refused).
    /// </summary>
    private sealed class EndOfArchiveStream(Stream inner) : ReadOnlyStream
    {
        private long _position;
        private int _padding = -1;

        /// <summary>Bytes handed to the reader, supplied zeros included.</summary>
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        /// <summary>How many bytes the layer really had; null until its end was read.</summary>
        public long? RealLength { get; private set; }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;   // a zero-length read says nothing about the end of the data
            if (_padding < 0)
            {
                var n = inner.Read(buffer);
                if (n > 0) { _position += n; return n; }
                Ended();
            }
            return Pad(buffer);
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            if (buffer.IsEmpty) return 0;
            if (_padding < 0)
            {
                var n = await inner.ReadAsync(buffer, ct);
                if (n > 0) { _position += n; return n; }
                Ended();
            }
            return Pad(buffer.Span);
        }
        private void Ended()
        {
            RealLength = _position;
            _padding = (int)((512 - _position % 512) % 512) + 1024;
        }
        private int Pad(Span<byte> buffer)
        {
            var zeros = Math.Min(_padding, buffer.Length);
            buffer[..zeros].Clear();
            _padding -= zeros;
            _position += zeros;
            return zeros;
        }
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Fails with <paramref name="exceeded"/>'s exception once more than <paramref name="limit"/> bytes were read.</summary>
    private sealed class LimitedStream(Stream inner, long limit, Func<Exception> exceeded) : ReadOnlyStream
    {
        private long _read;
        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => Count(await inner.ReadAsync(buffer, ct));
        private int Count(int n)
        {
            _read += n;
            return _read > limit ? throw exceeded() : n;
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
