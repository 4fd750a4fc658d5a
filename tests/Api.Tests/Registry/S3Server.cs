using System.Diagnostics;
using Amazon.S3;
using Amazon.S3.Model;
using Platform.Api.Infrastructure;
using Platform.Api.Registry;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>
/// A real S3-compatible server on loopback for the registry's bucket store: s3rver (npm; scripts/test.sh installs it
/// under /opt/platform-tests, or PLATFORM_TEST_S3RVER names it). It speaks S3's REST protocol (multipart uploads, ranges,
/// errors as XML) but does not verify version-4 signatures, so credentials are not put to the test here. One bucket,
/// created at start; <see cref="Client"/> looks into it as an operator's S3 tool would.
/// </summary>
public sealed class S3Server : IAsyncDisposable
{
    public const string AccessKey = "S3RVER", SecretKey = "S3RVER";
    private readonly Process _process;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-tests", "s3-" + Guid.NewGuid().ToString("N")[..8]);

    public string Bucket { get; }
    public string ServiceUrl { get; }
    public IAmazonS3 Client { get; }

    public static string Executable =>
        Environment.GetEnvironmentVariable("PLATFORM_TEST_S3RVER") ?? "/opt/platform-tests/s3rver/node_modules/.bin/s3rver";

    private S3Server(string bucket)
    {
        Assert.True(File.Exists(Executable), $"s3rver is not installed at {Executable}: scripts/test.sh installs it (npm install --prefix /opt/platform-tests/s3rver s3rver)");
        Bucket = bucket;
        var port = Run.FreePort();
        ServiceUrl = $"http://127.0.0.1:{port}";
        Directory.CreateDirectory(_dir);
        _process = Built.Start(Executable, ["-d", Path.Combine(_dir, "data"), "-a", "127.0.0.1", "-p", port.ToString(), "--no-vhost-buckets", "--configure-bucket", bucket],
            new Dictionary<string, string>(), Path.Combine(_dir, "s3rver.log"));
        Client = S3BlobStore.Client(Options());
    }

    public static async Task<S3Server> StartAsync(string bucket = "platform")
    {
        var server = new S3Server(bucket);
        try
        {
            // Ready once the bucket answers a signed request.
            await Nodes.Cluster.WaitAsync(async () =>
            {
                Assert.False(server._process.HasExited, $"s3rver exited: {File.ReadAllText(Path.Combine(server._dir, "s3rver.log"))}");
                try
                {
                    await server.Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, MaxKeys = 1 });
                    return true;
                }
                catch (Exception e) when (e is HttpRequestException or AmazonS3Exception) { return false; }
            }, 30, "s3rver answering");
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public S3Options Options(string prefix = "", int partSizeMiB = 5) => new()
    {
        Bucket = Bucket, ServiceUrl = ServiceUrl, AccessKey = AccessKey, SecretKey = SecretKey, Prefix = prefix, PartSizeMiB = partSizeMiB,
    };

    /// <summary>The Api's settings for this bucket (parts of 5 MiB, S3's least, so a test's blobs go up in several).</summary>
    public Dictionary<string, string?> Settings(string prefix = "") => new()
    {
        ["Platform:Registry:S3:Bucket"] = Bucket,
        ["Platform:Registry:S3:ServiceUrl"] = ServiceUrl,
        ["Platform:Registry:S3:AccessKey"] = AccessKey,
        ["Platform:Registry:S3:SecretKey"] = SecretKey,
        ["Platform:Registry:S3:Prefix"] = prefix,
        ["Platform:Registry:S3:PartSizeMiB"] = "5",
    };

    /// <summary>Whether the bucket holds the blob <paramref name="digest"/> under <paramref name="prefix"/>.</summary>
    public async Task<bool> HoldsAsync(string digest, string prefix = "")
    {
        try
        {
            await Client.GetObjectMetadataAsync(Bucket, prefix + Digests.StoredName(digest));
            return true;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>The requests s3rver logged for <paramref name="key"/>: its log names the path and query, not the method ("…key?partNumber=2&amp;uploadId=… 200 …").</summary>
    public List<string> Requests(string key)
    {
        return [.. Built.ReadLog(Path.Combine(_dir, "s3rver.log")).Split('\n').Where(l => l.Contains(key, StringComparison.Ordinal))];
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
        Client.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
