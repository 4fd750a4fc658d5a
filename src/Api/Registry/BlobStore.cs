using System.Security.Cryptography;

namespace Platform.Api.Registry;

/// <summary>
/// Content-addressed storage of registry blobs and upload sessions. Everything streams: memory use
/// does not grow with blob size. A file system implementation is the default; an S3-compatible
/// store can implement the same interface.
/// </summary>
public interface IBlobStore
{
    /// <summary>The size of a stored blob, or null when it is not stored.</summary>
    long? Size(string digest);

    /// <summary>Opens a stored blob for reading (seekable, so ranges can be served).</summary>
    Stream OpenRead(string digest);

    /// <summary>Appends <paramref name="data"/> to an upload session at <paramref name="offset"/> and returns the new size.
    /// Refuses (<see cref="BlobTooLargeException"/>) as soon as the session would pass <paramref name="maxBytes"/>.</summary>
    Task<long> AppendAsync(Guid upload, long offset, Stream data, long maxBytes, CancellationToken ct);

    /// <summary>Bytes received so far by an upload session (0 for a new one).</summary>
    long UploadSize(Guid upload);

    /// <summary>Digest (sha256) of everything received by an upload session.</summary>
    Task<string> DigestUploadAsync(Guid upload, CancellationToken ct);

    /// <summary>Moves a verified upload to its content address, atomically; a concurrent twin is harmless.</summary>
    void Commit(Guid upload, string digest);

    /// <summary>Stores small content (a manifest) at its content address, atomically.</summary>
    Task PutAsync(string digest, ReadOnlyMemory<byte> content, CancellationToken ct);

    void DeleteUpload(Guid upload);

    void Delete(string digest);

    /// <summary>Temporary and upload files not touched since <paramref name="before"/> (left by crashes).</summary>
    IEnumerable<string> StaleTemporaryFiles(DateTime before);
}

public sealed class BlobTooLargeException(long max) : Exception($"The blob is larger than {max} bytes.")
{
    public long Max { get; } = max;
}

public sealed class UploadOffsetException(long expected) : Exception($"The upload continues at byte {expected}.")
{
    public long Expected { get; } = expected;
}

public sealed class FileSystemBlobStore : IBlobStore
{
    private const int BufferSize = 1 << 20;
    private readonly string _blobs;
    private readonly string _uploads;

    public FileSystemBlobStore(string root)
    {
        _blobs = Path.Combine(root, "blobs", "sha256");
        _uploads = Path.Combine(root, "uploads");
        Directory.CreateDirectory(_blobs);
        Directory.CreateDirectory(_uploads);
    }

    /// <summary>Only ever called with digests that passed <see cref="Digests.IsValid"/>: no path can be smuggled in.</summary>
    private string BlobPath(string digest)
    {
        var hex = digest["sha256:".Length..];
        return Path.Combine(_blobs, hex[..2], hex);
    }

    private string UploadPath(Guid upload) => Path.Combine(_uploads, upload.ToString("N"));

    public long? Size(string digest)
    {
        var info = new FileInfo(BlobPath(digest));
        return info.Exists ? info.Length : null;
    }

    public Stream OpenRead(string digest) =>
        new FileStream(BlobPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);

    public async Task<long> AppendAsync(Guid upload, long offset, Stream data, long maxBytes, CancellationToken ct)
    {
        await using var file = new FileStream(UploadPath(upload), FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, BufferSize, FileOptions.Asynchronous);
        if (file.Length != offset)
            throw new UploadOffsetException(file.Length);
        file.Seek(offset, SeekOrigin.Begin);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            int read;
            while ((read = await data.ReadAsync(buffer.AsMemory(0, BufferSize), ct)) > 0)
            {
                if (file.Position + read > maxBytes)
                {
                    file.SetLength(offset);   // refuse the whole chunk, keep what was there
                    throw new BlobTooLargeException(maxBytes);
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
        return info.Exists ? info.Length : 0;
    }

    public async Task<string> DigestUploadAsync(Guid upload, CancellationToken ct)
    {
        var path = UploadPath(upload);
        if (!File.Exists(path))
            return Digests.Of([]);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return "sha256:" + Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
    }

    public void Commit(Guid upload, string digest)
    {
        var source = UploadPath(upload);
        if (!File.Exists(source))
            File.WriteAllBytes(source, []);
        var target = BlobPath(digest);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        try
        {
            File.Move(source, target, overwrite: false);
        }
        catch (IOException) when (File.Exists(target))
        {
            File.Delete(source);   // the same content arrived first through another upload
        }
    }

    public async Task PutAsync(string digest, ReadOnlyMemory<byte> content, CancellationToken ct)
    {
        var target = BlobPath(digest);
        if (File.Exists(target)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = Path.Combine(_uploads, "put-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllBytesAsync(temp, content.ToArray(), ct);
        try
        {
            File.Move(temp, target, overwrite: false);
        }
        catch (IOException) when (File.Exists(target))
        {
            File.Delete(temp);
        }
    }

    public void DeleteUpload(Guid upload) => File.Delete(UploadPath(upload));

    public void Delete(string digest) => File.Delete(BlobPath(digest));

    public IEnumerable<string> StaleTemporaryFiles(DateTime before) =>
        Directory.EnumerateFiles(_uploads).Where(f => File.GetLastWriteTimeUtc(f) < before);
}

public static class Digests
{
    /// <summary>Only sha256 digests are accepted (as the OCI spec requires of registries): 64 lower-case hex digits.</summary>
    public static bool IsValid(string? digest) =>
        digest is { Length: 71 } && digest.StartsWith("sha256:", StringComparison.Ordinal)
        && digest.AsSpan(7).IndexOfAnyExcept("0123456789abcdef") < 0;

    public static string Of(ReadOnlySpan<byte> content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));
}
