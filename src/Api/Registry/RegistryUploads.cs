using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Blob upload sessions (the spec's "pushing blobs"): <c>POST …/blobs/uploads/</c> opens one (or takes
/// the whole blob with <c>digest</c>), <c>PATCH</c> appends a chunk at the current offset, <c>GET</c>
/// tells how far it got, <c>PUT …?digest=</c> takes the last bytes and commits, <c>DELETE</c> drops it.
/// The digest is verified over everything received before the blob is visible; a refused upload
/// leaves no file and no row behind.
/// </summary>
public sealed class RegistryUploads(
    PlatformDbContext db, IBlobStore store, RegistryRepositories repositories, RegistryQuota quota, IOptions<PlatformOptions> options, TimeProvider clock)
{
    private RegistryOptions Options => options.Value.Registry;
    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    private static string UploadLocation(RegistryNames.Parsed name, Guid id) => $"/v2/{name.Name}/blobs/uploads/{id:N}";

    private static IResult Progress(HttpContext http, RegistryNames.Parsed name, Guid id, long size, int status = 202)
    {
        http.Response.Headers.Location = UploadLocation(name, id);
        http.Response.Headers.Range = $"0-{Math.Max(0, size - 1)}";
        http.Response.Headers["Docker-Upload-UUID"] = id.ToString("N");
        http.Response.ContentLength = 0;
        return Results.StatusCode(status);
    }

    public async Task<IResult> StartAsync(HttpContext http, RegistryNames.Parsed name, CancellationToken ct)
    {
        var repo = await repositories.GetOrCreateAsync(name, ct);
        var upload = new RegistryUpload { Id = Guid.NewGuid(), RepositoryId = repo.Id, CreatedAt = Now, UpdatedAt = Now };
        db.RegistryUploads.Add(upload);
        await db.SaveChangesAsync(ct);
        if (http.Request.Query["digest"].ToString() is { Length: > 0 })
            return await FinishAsync(http, name, repo, upload, ct);   // monolithic: POST with the whole blob
        return Progress(http, name, upload.Id, 0);
    }

    private async Task<RegistryUpload?> FindAsync(RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        if (!Guid.TryParseExact(id, "N", out var guid)) return null;
        return await db.RegistryUploads.FirstOrDefaultAsync(u => u.Id == guid
            && db.RegistryRepositories.Any(r => r.Id == u.RepositoryId && r.Name == name.Name), ct);
    }

    /// <summary>Appends a chunk; one whose <c>Content-Range</c> does not continue the upload gets 416 with the current range.</summary>
    public async Task<IResult> PatchAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await FindAsync(name, id, ct);
        if (upload is null) return RegistryErrors.BlobUploadUnknown();
        var offset = store.UploadSize(upload.Id);
        var range = http.Request.Headers.ContentRange.ToString();
        if (range.Length > 0)
        {
            var start = range.Replace("bytes ", "").Split('-')[0];
            if (!long.TryParse(start, out var s) || s != offset)
                return Progress(http, name, upload.Id, offset, 416);
        }
        var repo = await db.RegistryRepositories.FirstAsync(r => r.Id == upload.RepositoryId, ct);
        long size;
        try
        {
            size = await store.AppendAsync(upload.Id, offset, http.Request.Body, Options.MaxBlobBytes, ct);
        }
        catch (BlobTooLargeException e)
        {
            return RegistryErrors.SizeInvalid($"blobs are limited to {e.Max} bytes");
        }
        catch (UploadOffsetException e)
        {
            return Progress(http, name, upload.Id, e.Expected, 416);
        }
        if (await quota.CheckAsync(repo, size, null, ct) is { } denied)
        {
            await DropAsync(upload, ct);
            return denied;
        }
        upload.UpdatedAt = Now;
        await db.SaveChangesAsync(ct);
        return Progress(http, name, upload.Id, size);
    }

    public async Task<IResult> StatusAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await FindAsync(name, id, ct);
        return upload is null ? RegistryErrors.BlobUploadUnknown() : Progress(http, name, upload.Id, store.UploadSize(upload.Id), 204);
    }

    public async Task<IResult> CancelAsync(RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await FindAsync(name, id, ct);
        if (upload is null) return RegistryErrors.BlobUploadUnknown();
        await DropAsync(upload, ct);
        return Results.NoContent();
    }

    private async Task DropAsync(RegistryUpload upload, CancellationToken ct)
    {
        store.DeleteUpload(upload.Id);
        db.RegistryUploads.Remove(upload);
        await db.SaveChangesAsync(ct);
    }

    public async Task<IResult> FinishAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await FindAsync(name, id, ct);
        if (upload is null) return RegistryErrors.BlobUploadUnknown();
        var repo = await db.RegistryRepositories.FirstAsync(r => r.Id == upload.RepositoryId, ct);
        return await FinishAsync(http, name, repo, upload, ct);
    }

    /// <summary>Takes the last bytes (if any), verifies the digest over everything received, then commits.</summary>
    private async Task<IResult> FinishAsync(HttpContext http, RegistryNames.Parsed name, RegistryRepository repo, RegistryUpload upload, CancellationToken ct)
    {
        var digest = http.Request.Query["digest"].ToString();
        if (!Digests.IsValid(digest))
            return RegistryErrors.DigestInvalid("the digest query parameter must be sha256:<64 hex digits>");
        try
        {
            await store.AppendAsync(upload.Id, store.UploadSize(upload.Id), http.Request.Body, Options.MaxBlobBytes, ct);
        }
        catch (BlobTooLargeException e)
        {
            await DropAsync(upload, ct);
            return RegistryErrors.SizeInvalid($"blobs are limited to {e.Max} bytes");
        }
        var actual = await store.DigestUploadAsync(upload.Id, ct);
        if (actual != digest)
        {
            await DropAsync(upload, ct);
            return RegistryErrors.DigestInvalid($"the content's digest is {actual}, not {digest}");
        }
        var size = store.UploadSize(upload.Id);
        if (await quota.CheckAsync(repo, size, digest, ct) is { } denied)
        {
            await DropAsync(upload, ct);
            return denied;
        }
        store.Commit(upload.Id, digest);
        db.RegistryUploads.Remove(upload);
        await db.SaveChangesAsync(ct);
        await repositories.CommitBlobAsync(repo, digest, size, ct);
        return RegistryResults.Created(http, RegistryBlobs.Location(name, digest), digest);
    }
}
