using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Amazon.S3.Model;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Registry;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>Every registry test, with the blobs in an S3-compatible bucket.</summary>
[Collection("registry-s3")]
public sealed class S3RegistryTests(S3RegistryFixture f) : RegistryTests(f);

/// <summary>
/// What the bucket store adds: blobs larger than a part go up in parts, ranges are read from the bucket, upload
/// sessions stay on the data folder and leave nothing there, garbage collection empties the bucket, and a replica
/// refuses a bucket that is not its installation's (with the way to move from the folder to a bucket proven).
/// </summary>
[Collection("registry-s3")]
public sealed class S3BlobStoreTests(S3RegistryFixture f)
{
    private const string Prefix = "reg/";

    private static string Sha(byte[] b) => RegistryHttp.Sha(b);

    [Fact]
    public async Task A_blob_larger_than_a_part_goes_up_in_parts_and_is_read_back_whole_and_by_ranges_from_the_bucket()
    {
        var dev = f.Basic(f.Developer);
        var content = RandomNumberGenerator.GetBytes(7 * 1024 * 1024 + 123);   // two parts of at most 5 MiB
        var digest = Sha(content);
        // A chunked upload: the session lives on the data folder (S3 objects take no appends) until it is finished.
        var started = await dev.PostAsync("/v2/reg/p/big/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var location = started.Headers.Location!.ToString();
        var half = content.Length / 2;
        using (var first = new ByteArrayContent(content, 0, half))
        {
            first.Headers.ContentRange = new ContentRangeHeaderValue(0, half - 1);
            var patched = await dev.PatchAsync(location, first);
            Assert.Equal(HttpStatusCode.Accepted, patched.StatusCode);
            location = patched.Headers.Location!.ToString();
        }
        var uploads = Path.Combine(f.Host.DataDir, "registry", "uploads");
        Assert.NotEmpty(Directory.GetFiles(uploads));
        var finished = await dev.PutAsync($"{location}{(location.Contains('?') ? '&' : '?')}digest={digest}", new ByteArrayContent(content, half, content.Length - half));
        Assert.Equal(HttpStatusCode.Created, finished.StatusCode);

        Assert.True(await f.S3.HoldsAsync(digest, Prefix), "the bucket holds the blob");
        Assert.Equal(1, await f.StoredCopiesAsync(digest));   // and the data folder does not
        Assert.Empty(Directory.GetFiles(uploads));
        var key = Prefix + Digests.StoredName(digest);
        var stored = await f.S3.Client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = f.S3.Bucket, Key = key });
        Assert.Equal(content.Length, stored.ContentLength);
        var requests = f.S3.Requests(key);   // a multipart upload of two parts: started, part 1, part 2, completed
        Assert.Contains(requests, r => r.Contains("?uploads 200"));
        Assert.Contains(requests, r => r.Contains("partNumber=1&") && r.Contains(" 200 "));
        Assert.Contains(requests, r => r.Contains("partNumber=2&") && r.Contains(" 200 "));
        Assert.DoesNotContain(requests, r => r.Contains("partNumber=3"));

        Assert.Equal(content, await dev.GetByteArrayAsync($"/v2/reg/p/big/blobs/{digest}"));
        using var range = new HttpRequestMessage(HttpMethod.Get, $"/v2/reg/p/big/blobs/{digest}");
        range.Headers.Range = new RangeHeaderValue(6_000_000, 6_000_099);
        var partial = await dev.SendAsync(range);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(content.AsSpan(6_000_000, 100).ToArray(), await partial.Content.ReadAsByteArrayAsync());
        using var head = new HttpRequestMessage(HttpMethod.Head, $"/v2/reg/p/big/blobs/{digest}");
        var headed = await dev.SendAsync(head);
        Assert.Equal(HttpStatusCode.OK, headed.StatusCode);
        Assert.Equal(content.Length, headed.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task Garbage_collection_deletes_unreferenced_blobs_from_the_bucket_and_keeps_the_rest()
    {
        await using var host = new PlatformHost(Provider.Postgres, settings: new Dictionary<string, string?>(f.S3.Settings(prefix: "gc/"))
        {
            ["Platform:Registry:GcGracePeriod"] = "00:00:00",
        });
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "gc" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/gc/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var registry = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        var keptLayer = RandomNumberGenerator.GetBytes(100_000);
        await RegistryHttp.PushImageAsync(registry, "gc/p/app", "v1", keptLayer);
        var orphan = await RegistryHttp.PushBlobAsync(registry, "gc/p/app", RandomNumberGenerator.GetBytes(300_000));
        Assert.True(await f.S3.HoldsAsync(orphan, "gc/"));

        await using var scope = host.Services.CreateAsyncScope();
        var report = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.True(report.Bytes >= 300_000, $"freed {report.Bytes} bytes");
        Assert.False(await f.S3.HoldsAsync(orphan, "gc/"), "the orphan left the bucket");
        Assert.True(await f.S3.HoldsAsync(Sha(keptLayer), "gc/"), "the tagged image's layer stays");
        Assert.Equal(keptLayer, await registry.GetByteArrayAsync($"/v2/gc/p/app/blobs/{Sha(keptLayer)}"));
    }

    [Fact]
    public async Task A_replica_refuses_a_bucket_of_another_installation_or_a_missing_one_and_moves_from_the_folder_to_a_bucket_as_documented()
    {
        // An installation that kept its blobs on the data folder, with one image.
        var layer = RandomNumberGenerator.GetBytes(50_000);
        string dataDir, connectionString;
        await using (var folder = new PlatformHost(Provider.Postgres))
        {
            (dataDir, connectionString) = (folder.DataDir, folder.ConnectionString!);
            var admin = folder.Admin();
            await admin.PostAsJsonAsync("/api/v1/teams", new { name = "mv" }).ShouldBeAsync(HttpStatusCode.Created);
            await admin.PostAsJsonAsync("/api/v1/teams/mv/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
            await RegistryHttp.PushImageAsync(RegistryHttp.Basic(folder, PlatformHost.AdminToken), "mv/p/app", "v1", layer);
        }

        // Pointed at an empty bucket, it refuses: the database has blobs the bucket does not.
        await using (var empty = new PlatformHost(Provider.Postgres, dataDir, connectionString, f.S3.Settings(prefix: "mv/")))
            Assert.Contains("has no storage-id object while this database already has registry blobs", Flatten(Assert.ThrowsAny<Exception>(() => empty.Admin())));
        // A bucket that does not exist: the replica says it cannot read it.
        var missing = f.S3.Settings(prefix: "mv/");
        missing["Platform:Registry:S3:Bucket"] = "no-such-bucket";
        await using (var nowhere = new PlatformHost(Provider.Postgres, dataDir, connectionString, missing))
            Assert.Contains("cannot be read (404 NoSuchBucket", Flatten(Assert.ThrowsAny<Exception>(() => nowhere.Admin())));

        // The move, as docs/operations.md says: the folder's blobs and storage-id into the bucket, under the prefix.
        var blobs = Path.Combine(dataDir, "registry", "blobs");
        foreach (var file in Directory.GetFiles(blobs, "*", SearchOption.AllDirectories))
            await f.S3.Client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = f.S3.Bucket, Key = "mv/blobs/" + Path.GetRelativePath(blobs, file), FilePath = file, UseChunkEncoding = false,
            });
        await f.S3.Client.PutObjectAsync(new PutObjectRequest { BucketName = f.S3.Bucket, Key = "mv/storage-id", FilePath = Path.Combine(dataDir, "storage-id"), UseChunkEncoding = false });
        Directory.Delete(blobs, recursive: true);   // the folder no longer holds them: reads must come from the bucket
        await using (var moved = new PlatformHost(Provider.Postgres, dataDir, connectionString, f.S3.Settings(prefix: "mv/")))
        {
            var registry = RegistryHttp.Basic(moved, PlatformHost.AdminToken);
            Assert.Equal(layer, await registry.GetByteArrayAsync($"/v2/mv/p/app/blobs/{Sha(layer)}"));
            Assert.Equal(HttpStatusCode.OK, (await registry.GetAsync("/v2/mv/p/app/manifests/v1")).StatusCode);
        }

        // Another installation (its own database and folder) on the same bucket and prefix is refused; on a prefix of its own it starts.
        await using (var other = new PlatformHost(Provider.Postgres, settings: f.S3.Settings(prefix: "mv/")))
            Assert.Contains("belongs to another installation", Flatten(Assert.ThrowsAny<Exception>(() => other.Admin())));
        await using var own = new PlatformHost(Provider.Postgres, settings: f.S3.Settings(prefix: "own/"));
        (await own.Admin().GetAsync("/api/v1/teams")).EnsureSuccessStatusCode();
        var marker = await f.S3.Client.GetObjectAsync(f.S3.Bucket, "own/storage-id");
        using var reader = new StreamReader(marker.ResponseStream);
        Assert.Equal((await File.ReadAllTextAsync(Path.Combine(own.DataDir, "storage-id"))).Trim(), (await reader.ReadToEndAsync()).Trim());
    }

    private static string Flatten(Exception e) => e is AggregateException a ? string.Join(" | ", a.InnerExceptions.Select(Flatten)) : e.Message + (e.InnerException is { } inner ? " | " + Flatten(inner) : "");
}
