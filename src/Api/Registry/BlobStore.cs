using System.Security.Cryptography;

namespace Platform.Api.Registry;

/// <summary>
/// Content-addressed storage of registry blobs and upload sessions. Everything streams: memory use
/// does not grow with blob size. The file system store is the default (<see cref="FileSystemBlobStore"/>);
/// <see cref="S3BlobStore"/> keeps the blobs in an S3-compatible bucket and the upload sessions on the data folder.
/// </summary>
public interface IBlobStore
{
    /// <summary>The size of a stored blob, or null when it is not stored.</summary>
    Task<long?> SizeAsync(string digest, CancellationToken ct);

    /// <summary>Opens a stored blob for reading (seekable, so ranges can be served), or null when it is not stored.</summary>
    Task<Stream?> OpenReadAsync(string digest, CancellationToken ct);

    /// <summary>Creates an upload session's (empty) file: only sessions created here take chunks.</summary>
    void CreateUpload(Guid upload);

    /// <summary>
    /// Appends <paramref name="data"/> to an upload session at <paramref name="offset"/> and returns the new size.
    /// One request writes a session at a time (<see cref="UploadBusyException"/> for the others, and for a session
    /// being finished); <paramref name="limit"/> is asked how large the session may grow, at the start and then every
    /// <see cref="UploadLimit.Window"/> bytes, and the whole chunk is refused (<see cref="BlobTooLargeException"/>)
    /// as soon as it would pass that.
    /// </summary>
    Task<long> AppendAsync(Guid upload, long offset, Stream data, UploadLimit limit, CancellationToken ct);

    /// <summary>Bytes received so far by an upload session (0 for a new or unknown one).</summary>
    long UploadSize(Guid upload);

    /// <summary>
    /// Takes an upload session for the request finishing it: moves its file where no other request can append,
    /// appends <paramref name="tail"/>, flushes it to disk and digests exactly those bytes. Dispose the result to
    /// drop them, or <see cref="SealedUpload.Commit"/> to move them to their content address.
    /// </summary>
    Task<SealedUpload> SealAsync(Guid upload, Stream tail, UploadLimit limit, CancellationToken ct);

    /// <summary>Stores small content (a manifest) at its content address, atomically and durably; whatever was stored there is replaced.</summary>
    Task PutAsync(string digest, ReadOnlyMemory<byte> content, CancellationToken ct);

    void DeleteUpload(Guid upload);

    Task DeleteAsync(string digest, CancellationToken ct);

    /// <summary>Temporary and upload files not touched since <paramref name="before"/> (left by crashes).</summary>
    IEnumerable<string> StaleTemporaryFiles(DateTime before);
}

/// <summary>
/// How large an upload session may grow now, given its size so far (the blob limit, or what is left of the team's
/// registry quota once its other uploads are counted). Asked again every <see cref="Window"/> bytes, so uploads
/// streaming side by side see each other's progress.
/// </summary>
public delegate ValueTask<long> UploadLimit(long size, CancellationToken ct);

public static class UploadLimits
{
    public const long Window = 16L << 20;

    public static UploadLimit Fixed(long max) => (_, _) => ValueTask.FromResult(max);
}

public sealed class BlobTooLargeException(long max) : Exception($"The blob is larger than {max} bytes.")
{
    public long Max { get; } = max;
}

public sealed class UploadOffsetException(long expected) : Exception($"The upload continues at byte {expected}.")
{
    public long Expected { get; } = expected;
}

/// <summary>Another request is writing or finishing the session; <see cref="Size"/> is what it held when asked.</summary>
public sealed class UploadBusyException(long size) : Exception("Another request is writing to this upload.")
{
    public long Size { get; } = size;
}

/// <summary>The session has no file: it was finished, cancelled or never created here.</summary>
public sealed class UploadUnknownException() : Exception("The upload is not known.");

/// <summary>
/// An upload session held by the request finishing it: its bytes sit in a file no other request can reach, flushed
/// to disk, and <see cref="Digest"/> was computed over exactly them. <see cref="CommitAsync"/> moves them to their
/// content address; disposing without committing deletes them.
/// </summary>
public sealed class SealedUpload(FileStream file, string path, string digest, long size, SealedUpload.Install install) : IDisposable
{
    /// <summary>Puts the sealed bytes (the open file, at its path) at the digest's content address; the file may be gone after.</summary>
    public delegate Task Install(FileStream file, string path, string digest, CancellationToken ct);

    private bool _committed;

    public string Digest { get; } = digest;
    public long Size { get; } = size;

    public async Task CommitAsync(CancellationToken ct)
    {
        await install(file, path, Digest, ct);
        _committed = true;
    }

    public void Dispose()
    {
        file.Dispose();
        if (!_committed) File.Delete(path);
    }
}

public sealed class FileSystemBlobStore : IBlobStore
{
    private const int BufferSize = 1 << 20;
    private readonly string _root;
    private readonly string _uploads;

    public FileSystemBlobStore(string root)
    {
        _root = root;
        _uploads = Path.Combine(root, "uploads");
        Directory.CreateDirectory(Path.Combine(root, "blobs", "sha256"));
        Directory.CreateDirectory(_uploads);
    }

    /// <summary>Only ever called with digests that passed <see cref="Digests.IsValid"/>: no path can be smuggled in.</summary>
    private string BlobPath(string digest) => Path.Combine(_root, Digests.StoredName(digest));

    private string UploadPath(Guid upload) => Path.Combine(_uploads, upload.ToString("N"));

    /// <summary>Where a session's bytes go while its finishing request holds them: no request opens this name for writing.</summary>
    private string SealedPath(Guid upload) => UploadPath(upload) + ".sealed";

    public Task<long?> SizeAsync(string digest, CancellationToken ct)
    {
        var info = new FileInfo(BlobPath(digest));
        return Task.FromResult(info.Exists ? info.Length : (long?)null);
    }

    public Task<Stream?> OpenReadAsync(string digest, CancellationToken ct)
    {
        try
        {
            return Task.FromResult<Stream?>(new FileStream(BlobPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete,
                BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
    }

    public void CreateUpload(Guid upload) => new FileStream(UploadPath(upload), FileMode.CreateNew, FileAccess.Write).Dispose();

    /// <summary>
    /// Opens the session file for the one request that may write it. <see cref="FileShare.None"/> takes an exclusive
    /// <c>flock</c> on Linux, so a second writer is refused instead of interleaving; the name is checked again once the
    /// lock is held, because a finishing request renames the file (under the same lock) before it digests it.
    /// </summary>
    private FileStream OpenExclusive(Guid upload)
    {
        var path = UploadPath(upload);
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, BufferSize, FileOptions.Asynchronous);
        }
        catch (FileNotFoundException)
        {
            throw File.Exists(SealedPath(upload)) ? new UploadBusyException(UploadSize(upload)) : new UploadUnknownException();
        }
        catch (IOException)
        {
            throw new UploadBusyException(UploadSize(upload));   // locked by the request writing or finishing it
        }
        if (File.Exists(path)) return file;
        file.Dispose();
        throw new UploadBusyException(UploadSize(upload));   // renamed by a finishing request between our open and our lock
    }

    public async Task<long> AppendAsync(Guid upload, long offset, Stream data, UploadLimit limit, CancellationToken ct)
    {
        await using var file = OpenExclusive(upload);
        if (file.Length != offset)
            throw new UploadOffsetException(file.Length);
        return await CopyAsync(file, data, limit, ct);
    }

    /// <summary>Appends <paramref name="data"/> at the end of <paramref name="file"/>; a chunk that would pass the limit is cut off whole.</summary>
    private static async Task<long> CopyAsync(FileStream file, Stream data, UploadLimit limit, CancellationToken ct)
    {
        var offset = file.Length;
        file.Seek(offset, SeekOrigin.Begin);
        var max = await limit(offset, ct);
        var nextCheck = offset + UploadLimits.Window;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            int read;
            while ((read = await data.ReadAsync(buffer.AsMemory(0, BufferSize), ct)) > 0)
            {
                if (file.Position >= nextCheck)
                {
                    max = await limit(file.Position, ct);
                    nextCheck = file.Position + UploadLimits.Window;
                }
                if (file.Position + read > max)
                {
                    file.SetLength(offset);   // refuse the whole chunk, keep what was there
                    throw new BlobTooLargeException(max);
                }
                await file.WriteAsync(buffer.AsMemory(0, read), ct);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return file.Position;
    }

    public long UploadSize(Guid upload)
    {
        var info = new FileInfo(UploadPath(upload));
        if (info.Exists) return info.Length;
        var sealedFile = new FileInfo(SealedPath(upload));
        return sealedFile.Exists ? sealedFile.Length : 0;
    }

    public Task<SealedUpload> SealAsync(Guid upload, Stream tail, UploadLimit limit, CancellationToken ct) =>
        SealAsync(upload, tail, limit, (_, sealedPath, digest, _) =>
        {
            Install(sealedPath, digest);
            return Task.CompletedTask;
        }, ct);

    /// <summary>Seals a session as <see cref="SealAsync(Guid, Stream, UploadLimit, CancellationToken)"/> does, for a store that installs the bytes elsewhere.</summary>
    public async Task<SealedUpload> SealAsync(Guid upload, Stream tail, UploadLimit limit, SealedUpload.Install install, CancellationToken ct)
    {
        var file = OpenExclusive(upload);
        var path = SealedPath(upload);
        try
        {
            // From here on no request reaches these bytes by the session's name: a PATCH racing us is refused.
            File.Move(UploadPath(upload), path);
            var size = await CopyAsync(file, tail, limit, ct);
            await file.FlushAsync(ct);
            file.Flush(flushToDisk: true);   // the bytes are on disk before their name says they are a blob
            file.Seek(0, SeekOrigin.Begin);
            var digest = "sha256:" + Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
            return new SealedUpload(file, path, digest, size, install);
        }
        catch
        {
            await file.DisposeAsync();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Moves verified, flushed bytes to their content address, replacing whatever is stored there: a stored copy is
    /// never trusted to match its name (a disk error or a hand-edited file), and rename is atomic, so a reader sees
    /// the old bytes or the new ones. The folder is flushed too, so the name survives a crash.
    /// </summary>
    private void Install(string source, string digest)
    {
        var target = BlobPath(digest);
        var folder = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(folder);
        File.Move(source, target, overwrite: true);
        Durability.FlushDirectory(folder);
    }

    public async Task PutAsync(string digest, ReadOnlyMemory<byte> content, CancellationToken ct)
    {
        var temp = Path.Combine(_uploads, "put-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous))
            {
                await file.WriteAsync(content, ct);
                await file.FlushAsync(ct);
                file.Flush(flushToDisk: true);
            }
            Install(temp, digest);
        }
        finally
        {
            File.Delete(temp);   // gone already once installed
        }
    }

    public void DeleteUpload(Guid upload)
    {
        File.Delete(UploadPath(upload));
        File.Delete(SealedPath(upload));
    }

    public Task DeleteAsync(string digest, CancellationToken ct)
    {
        File.Delete(BlobPath(digest));
        return Task.CompletedTask;
    }

    public IEnumerable<string> StaleTemporaryFiles(DateTime before) =>
        Directory.EnumerateFiles(_uploads).Where(f => File.GetLastWriteTimeUtc(f) < before);
}

/// <summary>fsync of a folder, which .NET does not offer: a rename is durable only once its folder is flushed.</summary>
internal static partial class Durability
{
    private const int ReadOnlyDirectory = 0x10000;   // O_RDONLY | O_DIRECTORY

    public static void FlushDirectory(string folder)
    {
        var fd = Open(folder, ReadOnlyDirectory);
        if (fd < 0) throw new IOException($"Cannot open {folder} to flush it (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
        try
        {
            if (Fsync(fd) != 0) throw new IOException($"fsync of {folder} failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}

public static class Digests
{
    /// <summary>Only sha256 digests are accepted (as the OCI spec requires of registries): 64 lower-case hex digits.</summary>
    public static bool IsValid(string? digest) =>
        digest is { Length: 71 } && digest.StartsWith("sha256:", StringComparison.Ordinal)
        && digest.AsSpan(7).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static string Of(ReadOnlySpan<byte> content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>
    /// Where a stored blob lives below the store's root, the same in every store (<c>blobs/sha256/ab/ab12…</c>): a data
    /// folder's blobs copy into a bucket as they are. Only for digests that passed <see cref="IsValid"/>.
    /// </summary>
    public static string StoredName(string digest)
    {
        var hex = digest["sha256:".Length..];
        return $"blobs/sha256/{hex[..2]}/{hex}";
    }
}
