using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Blobs (the spec's "pulling blobs", "deleting blobs" and cross-repository mounts): a repository
/// reads a blob only through its link to it, so deleting a blob removes the link, and the bytes go
/// with the collector once no repository links them.
/// </summary>
public sealed class RegistryBlobs(PlatformDbContext db, IBlobStore store, RegistryRepositories repositories, RegistryQuota quota)
{
    public static string Location(RegistryNames.Parsed name, string digest) => $"/v2/{name.Name}/blobs/{digest}";

    /// <summary>
    /// <c>POST …/blobs/uploads/?mount=&amp;from=</c>: links the blob without moving bytes when the caller may
    /// pull it from the other repository and it is stored; null when the mount does not apply (the
    /// client then uploads, as the spec says).
    /// </summary>
    public async Task<IResult?> MountAsync(HttpContext http, RegistryNames.Parsed name, Func<RegistryNames.Parsed, Task<bool>> mayPull, CancellationToken ct)
    {
        var query = http.Request.Query;
        if (query["mount"].ToString() is not { Length: > 0 } mount || !Digests.IsValid(mount)
            || query["from"].ToString() is not { Length: > 0 } from || RegistryNames.Parse(from) is not { } fromName
            || !await mayPull(fromName)
            || await repositories.FindAsync(fromName, ct) is not { } fromRepo
            || !await repositories.LinkedAsync(fromRepo.Id, mount, ct) || await store.SizeAsync(mount, ct) is not { } mountedSize)
            return null;
        var repo = await repositories.GetOrCreateAsync(name, ct);
        if (await quota.CheckAsync(repo, mountedSize, mount, ct) is { } denied) return denied;
        await repositories.LinkAsync(repo.Id, mount, ct);
        return RegistryResults.Created(http, Location(name, mount), mount);
    }

    /// <summary><c>GET</c>/<c>HEAD</c> with <c>Range</c> support.</summary>
    public async Task<IResult> GetAsync(HttpContext http, RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var repo = await repositories.FindAsync(name, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        if (!await repositories.LinkedAsync(repo.Id, digest, ct) || await store.OpenReadAsync(digest, ct) is not { } content)
            return RegistryErrors.BlobUnknown(digest);
        http.Response.Headers["Docker-Content-Digest"] = digest;
        http.Response.Headers.ETag = $"\"{digest}\"";
        return Results.File(content, "application/octet-stream", enableRangeProcessing: true);
    }

    public async Task<IResult> DeleteAsync(RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var n = await db.RegistryRepositoryBlobs
            .Where(l => l.Digest == digest && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.Name == name.Name))
            .ExecuteDeleteAsync(ct);
        return n == 0 ? RegistryErrors.BlobUnknown(digest) : Results.StatusCode(202);
    }
}
