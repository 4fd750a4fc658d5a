using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Blob upload sessions (the spec's "pushing blobs"): <c>POST …/blobs/uploads/</c> opens one (or takes
/// the whole blob with <c>digest</c>), <c>PATCH</c> appends a chunk at the current offset, <c>GET</c>
/// tells how far it got, <c>PUT …?digest=</c> takes the last bytes and commits, <c>DELETE</c> drops it.
/// One request writes a session at a time; the finishing one first takes its bytes where no PATCH can
/// append, so the digest is verified over exactly what becomes the blob. Bytes in flight count against
/// the team's registry quota while they stream, and a team holds at most
/// <see cref="RegistryOptions.MaxUploadSessionsPerTeam"/> sessions. A refused upload leaves no file and no row behind.
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
        if (repo.TeamId is { } teamId)
        {
            var open = await db.RegistryUploads.CountAsync(u => db.RegistryRepositories.Any(r => r.Id == u.RepositoryId && r.TeamId == teamId), ct);
            if (open >= Options.MaxUploadSessionsPerTeam)
                return RegistryErrors.Error(429, "TOOMANYREQUESTS",
                    $"the team has {open} upload sessions open (at most {Options.MaxUploadSessionsPerTeam}): finish or cancel some; abandoned ones expire after {Options.UploadExpiry}",
                    new { resource = "uploadSessions", scope = "team", used = open, limit = Options.MaxUploadSessionsPerTeam });
        }
        var upload = new RegistryUpload { Id = Guid.NewGuid(), RepositoryId = repo.Id, CreatedAt = Now, UpdatedAt = Now };
        db.RegistryUploads.Add(upload);
        await db.SaveChangesAsync(ct);
        store.CreateUpload(upload.Id);
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

    /// <summary>
    /// Appends a chunk; one whose <c>Content-Range</c> does not continue the upload, or that arrives while another
    /// request writes or finishes the session, gets 416 with the current range.
    /// </summary>
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
            size = await store.AppendAsync(upload.Id, offset, http.Request.Body, quota.Limit(repo, upload.Id, Options.MaxBlobBytes), ct);
        }
        catch (BlobTooLargeException e)
        {
            return await TooLargeAsync(http, repo, upload, offset, e, drop: false, ct);
        }
        catch (UploadOffsetException e)
        {
            return Progress(http, name, upload.Id, e.Expected, 416);
        }
        catch (UploadBusyException e)
        {
            return Progress(http, name, upload.Id, e.Size, 416);
        }
        catch (UploadUnknownException)
        {
            return RegistryErrors.BlobUploadUnknown();
        }
        upload.UpdatedAt = Now;
        upload.Bytes = size;
        await db.SaveChangesAsync(ct);
        return Progress(http, name, upload.Id, size);
    }

    /// <summary>A chunk stopped by the blob limit (413) or by the team's quota, counted with its uploads in flight (403 with the figures).</summary>
    private async Task<IResult> TooLargeAsync(HttpContext http, RegistryRepository repo, RegistryUpload upload, long offset, BlobTooLargeException e, bool drop, CancellationToken ct)
    {
        var result = e.Max < Options.MaxBlobBytes && repo.TeamId is { } teamId
            ? await quota.UploadDeniedAsync(teamId, upload.Id, offset, http.Request.ContentLength ?? e.Max - offset + 1, ct)
            : RegistryErrors.SizeInvalid($"blobs are limited to {Options.MaxBlobBytes} bytes");
        if (drop) await DropAsync(upload, ct);
        else await db.RegistryUploads.Where(u => u.Id == upload.Id).ExecuteUpdateAsync(s => s.SetProperty(u => u.Bytes, offset), ct);
        return result;
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

    /// <summary>
    /// Takes the session (no PATCH appends from now on), the last bytes (if any), verifies the digest over exactly
    /// those bytes, then commits: the rows first, then the file, so the collector, which deletes a blob's row
    /// and then its file in one transaction, never deletes a file this upload has just put in place.
    /// </summary>
    private async Task<IResult> FinishAsync(HttpContext http, RegistryNames.Parsed name, RegistryRepository repo, RegistryUpload upload, CancellationToken ct)
    {
        var digest = http.Request.Query["digest"].ToString();
        if (!Digests.IsValid(digest))
            return RegistryErrors.DigestInvalid("the digest query parameter must be sha256:<64 hex digits>");
        var offset = store.UploadSize(upload.Id);
        SealedUpload sealedUpload;
        try
        {
            sealedUpload = await store.SealAsync(upload.Id, http.Request.Body, quota.Limit(repo, upload.Id, Options.MaxBlobBytes), ct);
        }
        catch (BlobTooLargeException e)
        {
            return await TooLargeAsync(http, repo, upload, offset, e, drop: true, ct);
        }
        catch (UploadBusyException e)
        {
            return Progress(http, name, upload.Id, e.Size, 416);
        }
        catch (UploadUnknownException)
        {
            return RegistryErrors.BlobUploadUnknown();
        }
        using (sealedUpload)
        {
            if (sealedUpload.Digest != digest)
            {
                await DropAsync(upload, ct);
                return RegistryErrors.DigestInvalid($"the content's digest is {sealedUpload.Digest}, not {digest}");
            }
            if (await quota.CheckAsync(repo, sealedUpload.Size, digest, ct, upload.Id) is { } denied)
            {
                await DropAsync(upload, ct);
                return denied;
            }
            await repositories.CommitBlobAsync(repo, digest, sealedUpload.Size, ct);
            await sealedUpload.CommitAsync(ct);
        }
        db.RegistryUploads.Remove(upload);
        await db.SaveChangesAsync(ct);
        return RegistryResults.Created(http, RegistryBlobs.Location(name, digest), digest);
    }
}
