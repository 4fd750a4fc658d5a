using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Platform.Api.Infrastructure;

namespace Platform.Api.Registry;

/// <summary>
/// Registry blobs in an S3-compatible bucket (<c>Platform:Registry:S3</c>), under the same names the file system store
/// uses (<c>{prefix}blobs/sha256/ab/ab…</c>), so a folder's blobs copy into a bucket as they are. Upload sessions stay on
/// the data folder (<see cref="FileSystemBlobStore"/>): an S3 object cannot be appended to, and a registry's chunked
/// uploads need exactly that. A finished session is digested there, then put in the bucket under its content address
/// (in parts of <see cref="S3Options.PartSizeMiB"/> when larger) and removed from the folder. Reads are ranged GETs
/// behind a seekable stream (<see cref="S3ReadStream"/>), so clients can resume and fetch ranges.
/// </summary>
public sealed class S3BlobStore(FileSystemBlobStore sessions, IAmazonS3 s3, S3Options options) : IBlobStore
{
    public const string MarkerKey = "storage-id";
    private readonly string _bucket = options.Bucket!;
    private readonly long _partSize = (long)options.PartSizeMiB << 20;

    /// <summary>The client for <paramref name="options"/>: path-style addressing and checksums only where S3 requires them, which every S3-compatible server understands.</summary>
    public static IAmazonS3 Client(S3Options options)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            AuthenticationRegion = options.Region,
            Timeout = TimeSpan.FromSeconds(100),
        };
        if (options.ServiceUrl is { } url) config.ServiceURL = url;
        else config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        return options.AccessKey is { } key
            ? new AmazonS3Client(new BasicAWSCredentials(key, options.SecretKey), config)
            : new AmazonS3Client(config);   // the SDK's own chain: AWS_ACCESS_KEY_ID…, a profile, an instance role
    }

    private string Key(string digest) => options.Prefix + Digests.StoredName(digest);

    public async Task<long?> SizeAsync(string digest, CancellationToken ct)
    {
        try
        {
            var head = await s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _bucket, Key = Key(digest) }, ct);
            return head.ContentLength;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            return null;   // a bucket gone is a server error, not "blob unknown" (clients would push again instead of retrying)
        }
    }

    /// <summary>One HEAD (the size, or null when the object is missing); the GETs come as the stream is read.</summary>
    public async Task<Stream?> OpenReadAsync(string digest, CancellationToken ct) =>
        await SizeAsync(digest, ct) is { } size ? new S3ReadStream(s3, _bucket, Key(digest), size) : null;

    public void CreateUpload(Guid upload) => sessions.CreateUpload(upload);

    public Task<long> AppendAsync(Guid upload, long offset, Stream data, UploadLimit limit, CancellationToken ct) =>
        sessions.AppendAsync(upload, offset, data, limit, ct);

    public long UploadSize(Guid upload) => sessions.UploadSize(upload);

    public Task<SealedUpload> SealAsync(Guid upload, Stream tail, UploadLimit limit, CancellationToken ct) =>
        sessions.SealAsync(upload, tail, limit, async (file, path, digest, token) =>
        {
            await PutAsync(Key(digest), file, file.Length, token);
            File.Delete(path);
        }, ct);

    public Task PutAsync(string digest, ReadOnlyMemory<byte> content, CancellationToken ct) =>
        PutAsync(Key(digest), new MemoryStream(content.ToArray(), writable: false), content.Length, ct);

    /// <summary>Puts <paramref name="length"/> bytes of <paramref name="source"/> (from its start) at <paramref name="key"/>: one request, or a multipart upload for more than a part.</summary>
    private async Task PutAsync(string key, Stream source, long length, CancellationToken ct)
    {
        source.Seek(0, SeekOrigin.Begin);
        if (length <= _partSize)
        {
            await s3.PutObjectAsync(new PutObjectRequest
            {
                BucketName = _bucket, Key = key, InputStream = source, AutoCloseStream = false, UseChunkEncoding = false,
                ContentType = "application/octet-stream",
            }, ct);
            return;
        }
        var started = await s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _bucket, Key = key, ContentType = "application/octet-stream" }, ct);
        try
        {
            var parts = new List<PartETag>();
            for (var (offset, number) = (0L, 1); offset < length; offset += _partSize, number++)
            {
                source.Seek(offset, SeekOrigin.Begin);
                var size = Math.Min(_partSize, length - offset);
                var part = await s3.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = _bucket, Key = key, UploadId = started.UploadId, PartNumber = number,
                    InputStream = new KeptOpen(source), PartSize = size, UseChunkEncoding = false,   // the SDK reads PartSize bytes from the position
                }, ct);
                parts.Add(new PartETag(number, part.ETag));
            }
            await s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = _bucket, Key = key, UploadId = started.UploadId, PartETags = parts,
            }, ct);
        }
        catch
        {
            // Frees the parts already stored; the failure that matters is the one rethrown, not the abort's (a bucket's
            // lifecycle rule for incomplete multipart uploads is the backstop, docs/operations.md).
            try
            {
                await s3.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _bucket, Key = key, UploadId = started.UploadId }, CancellationToken.None);
            }
            catch (Exception e) when (e is AmazonServiceException or HttpRequestException or IOException)
            {
            }
            throw;
        }
    }

    public void DeleteUpload(Guid upload) => sessions.DeleteUpload(upload);

    public Task DeleteAsync(string digest, CancellationToken ct) =>
        s3.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _bucket, Key = Key(digest) }, ct);

    public IEnumerable<string> StaleTemporaryFiles(DateTime before) => sessions.StaleTemporaryFiles(before);

    /// <summary>
    /// The bucket's installation id (<c>{prefix}storage-id</c>), as the data folder has one: written once, when the
    /// registry holds no blob yet; a bucket without it while the database has blobs, or with another id, is refused.
    /// </summary>
    public async Task CheckMarkerAsync(string expected, bool registryHasBlobs, CancellationToken ct)
    {
        var where = $"s3://{_bucket}/{options.Prefix}";
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(60));   // a silent endpoint must not hold the start for good
        try
        {
            var found = await ReadMarkerAsync(deadline.Token);
            if (found is null)
            {
                if (registryHasBlobs)
                    throw new StartRefusedException(
                        $"The registry's bucket {where} has no {MarkerKey} object while this database already has registry blobs: it is not the bucket "
                        + "this installation stores them in. Moving from the data folder to a bucket: copy {DataDir}/registry/blobs/ to "
                        + $"{where}blobs/ and {{DataDir}}/storage-id to {where}{MarkerKey}, then start again (docs/operations.md).");
                // Written only if absent (S3's conditional write; a server without it takes the last writer), then read
                // back: of two installations starting on one empty bucket, the one whose id is not there stops.
                try
                {
                    await s3.PutObjectAsync(new PutObjectRequest
                    {
                        BucketName = _bucket, Key = options.Prefix + MarkerKey, ContentBody = expected + "\n", UseChunkEncoding = false, IfNoneMatch = "*",
                    }, deadline.Token);
                }
                catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.Conflict)
                {
                }
                found = await ReadMarkerAsync(deadline.Token);
            }
            if (found != expected)
                throw new StartRefusedException(
                    $"The registry's bucket {where} belongs to another installation: its {MarkerKey} says {found}, this database expects {expected}. "
                    + "Point Platform:Registry:S3 at the bucket (and prefix) this database was used with.");
        }
        catch (AmazonServiceException e)
        {
            throw new StartRefusedException($"The registry's bucket {where} cannot be read ({(int)e.StatusCode} {e.ErrorCode}: {e.Message}). "
                + "Check Platform:Registry:S3 (ServiceUrl, Bucket, the access key: it needs s3:GetObject, s3:PutObject, s3:DeleteObject and "
                + "s3:ListBucket, without which S3 answers a missing object with 403) and that the bucket exists.");
        }
        catch (Exception e) when (e is AmazonClientException or HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw new StartRefusedException($"The registry's bucket {where} cannot be reached ({e.Message}). Check Platform:Registry:S3:ServiceUrl and the credentials.");
        }
    }

    /// <summary>The bucket's marker, or null when it has none (a bucket that is missing throws).</summary>
    private async Task<string?> ReadMarkerAsync(CancellationToken ct)
    {
        try
        {
            using var marker = await s3.GetObjectAsync(new GetObjectRequest { BucketName = _bucket, Key = options.Prefix + MarkerKey }, ct);
            using var reader = new StreamReader(marker.ResponseStream);
            return (await reader.ReadToEndAsync(ct)).Trim();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            return null;
        }
    }
}

/// <summary>A stream whose disposal leaves the one it wraps open: the SDK disposes a part's stream, and the parts share one file.</summary>
internal sealed class KeptOpen(Stream inner) : Stream
{
    public override bool CanRead => inner.CanRead;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => false;
    public override long Length => inner.Length;
    public override long Position { get => inner.Position; set => inner.Position = value; }
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => inner.ReadAsync(buffer, ct);
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => inner.ReadAsync(buffer, offset, count, ct);
    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// A stored object as a seekable, read-only stream: a read opens a ranged GET of the next <see cref="Window"/> bytes from
/// the current position and reads on along it, then opens the next window; a seek elsewhere drops the response, and the
/// next read opens another. A range (a client resuming a layer) costs GETs of about its own size, never the whole rest
/// of a large layer.
/// </summary>
public sealed class S3ReadStream(IAmazonS3 s3, string bucket, string key, long length) : Stream
{
    public const long Window = 16L << 20;
    private long _position;
    private long _windowEnd;   // exclusive end of the open response's range
    private GetObjectResponse? _response;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => Seek(value, SeekOrigin.Begin);
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        var target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };
        if (target < 0) throw new IOException("Cannot seek before the start of the object.");
        if (target != _position) Drop();
        return _position = target;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_position >= length || buffer.Length == 0) return 0;
        if (_response is not null && _position >= _windowEnd) Drop();
        if (_response is null)
        {
            _windowEnd = Math.Min(length, _position + Window);
            _response = await s3.GetObjectAsync(new GetObjectRequest { BucketName = bucket, Key = key, ByteRange = new ByteRange(_position, _windowEnd - 1) }, ct);
        }
        var n = await _response.ResponseStream.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _windowEnd - _position)], ct);
        if (n == 0) throw new IOException($"The object {key} ended at byte {_position} of {length}.");
        _position += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    private void Drop()
    {
        _response?.Dispose();
        _response = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Drop();
        base.Dispose(disposing);
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
