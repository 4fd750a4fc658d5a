using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Registry operations once the caller is authorised. Bytes go to <see cref="IBlobStore"/>; the
/// database records repositories, which blobs each may read, manifests, references and tags.
/// Digests are verified before anything is committed; pushes of the same content may race safely.
/// </summary>
public sealed partial class RegistryService(
    PlatformDbContext db, IBlobStore store, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<RegistryService> log)
{
    private RegistryOptions Options => options.Value.Registry;
    private DateTime Now => clock.GetUtcNow().UtcDateTime;
    public const long GiB = 1024L * 1024 * 1024;

    /// <summary>Repository creation, one at a time in this process: a push uploads its layers in parallel, and each would create it.</summary>
    private static readonly SemaphoreSlim CreateLock = new(1, 1);

    private async Task<RegistryRepository?> RepositoryAsync(RegistryNames.Parsed name, bool create, CancellationToken ct)
    {
        var repo = await db.RegistryRepositories.FirstOrDefaultAsync(r => r.Name == name.Name, ct);
        if (repo is not null || !create) return repo;
        await CreateLock.WaitAsync(ct);
        try
        {
            repo = await db.RegistryRepositories.FirstOrDefaultAsync(r => r.Name == name.Name, ct);
            if (repo is not null) return repo;
            Guid? teamId = null, projectId = null;
            if (!name.IsLibrary)
            {
                var project = await db.Projects.Where(p => p.Name == name.Project && p.Team!.Name == name.Team)
                    .Select(p => new { p.Id, p.TeamId }).FirstAsync(ct);
                (teamId, projectId) = (project.TeamId, project.Id);
            }
            repo = new RegistryRepository { Name = name.Name, TeamId = teamId, ProjectId = projectId, CreatedAt = Now };
            db.RegistryRepositories.Add(repo);
            try
            {
                await db.SaveChangesAsync(ct);
                return repo;
            }
            catch (DbUpdateException)
            {
                db.ChangeTracker.Clear();   // created by a push on another replica
                return await db.RegistryRepositories.FirstAsync(r => r.Name == name.Name, ct);
            }
        }
        finally
        {
            CreateLock.Release();
        }
    }

    private Task<bool> LinkedAsync(Guid repositoryId, string digest, CancellationToken ct) =>
        db.RegistryRepositoryBlobs.AnyAsync(l => l.RepositoryId == repositoryId && l.Digest == digest, ct);

    /// <summary>Bytes of distinct blobs readable through the team's repositories: what counts against registryGiB.</summary>
    public Task<long> TeamBytesAsync(Guid teamId, CancellationToken ct) =>
        db.RegistryBlobs.Where(b => db.RegistryRepositoryBlobs.Any(l => l.Digest == b.Digest
                && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.TeamId == teamId)))
            .SumAsync(b => b.Size, ct);

    /// <summary>Refuses (DENIED) a blob that would take the team past its registry quota; null when it fits.</summary>
    private async Task<IResult?> QuotaAsync(RegistryRepository repo, long size, string? digest, CancellationToken ct)
    {
        if (repo.TeamId is not { } teamId) return null;
        if (digest is not null && await db.RegistryRepositoryBlobs.AnyAsync(l => l.Digest == digest
                && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.TeamId == teamId), ct))
            return null;   // the team stores it already: no new bytes
        var limitGiB = await db.Teams.Where(t => t.Id == teamId).Select(t => t.Quota.RegistryGiB).FirstAsync(ct);
        var used = await TeamBytesAsync(teamId, ct);
        if (used + size <= limitGiB * GiB) return null;
        return RegistryErrors.Error(403, "DENIED", "the team's registry quota is exceeded",
            new { resource = "registryGiB", scope = "team", asked = size, used, limit = limitGiB * GiB, unit = "bytes" });
    }

    private async Task CommitBlobAsync(RegistryRepository repo, string digest, long size, CancellationToken ct)
    {
        if (!await db.RegistryBlobs.AnyAsync(b => b.Digest == digest, ct))
        {
            db.RegistryBlobs.Add(new RegistryBlob { Digest = digest, Size = size, CreatedAt = Now });
            await SaveIgnoringRaceAsync(ct);
        }
        await LinkAsync(repo.Id, digest, ct);
    }

    private async Task LinkAsync(Guid repositoryId, string digest, CancellationToken ct)
    {
        var link = await db.RegistryRepositoryBlobs.FirstOrDefaultAsync(l => l.RepositoryId == repositoryId && l.Digest == digest, ct);
        if (link is not null)
        {
            link.CreatedAt = Now;   // refreshed: a push that reuses content is protected from the collector's grace period
            await db.SaveChangesAsync(ct);
            return;
        }
        db.RegistryRepositoryBlobs.Add(new RegistryRepositoryBlob { RepositoryId = repositoryId, Digest = digest, CreatedAt = Now });
        await SaveIgnoringRaceAsync(ct);
    }

    /// <summary>Saves; a unique-key violation means a concurrent request stored the same row first.</summary>
    private async Task SaveIgnoringRaceAsync(CancellationToken ct)
    {
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
        }
    }

    private static string BlobLocation(RegistryNames.Parsed name, string digest) => $"/v2/{name.Name}/blobs/{digest}";
    private static string UploadLocation(RegistryNames.Parsed name, Guid id) => $"/v2/{name.Name}/blobs/uploads/{id:N}";
    private static string RangeHeader(long size) => $"0-{Math.Max(0, size - 1)}";

    private static IResult Created(HttpContext http, string location, string digest)
    {
        http.Response.Headers.Location = location;
        http.Response.Headers["Docker-Content-Digest"] = digest;
        return Results.StatusCode(201);
    }

    private static IResult UploadProgress(HttpContext http, RegistryNames.Parsed name, Guid id, long size, int status = 202)
    {
        http.Response.Headers.Location = UploadLocation(name, id);
        http.Response.Headers.Range = RangeHeader(size);
        http.Response.Headers["Docker-Upload-UUID"] = id.ToString("N");
        http.Response.ContentLength = 0;
        return Results.StatusCode(status);
    }

    public async Task<IResult> StartUploadAsync(HttpContext http, RegistryNames.Parsed name, RegistryCaller caller,
        Func<RegistryCaller, RegistryNames.Parsed, RegistryAction, Task<bool>> can, CancellationToken ct)
    {
        var repo = (await RepositoryAsync(name, create: true, ct))!;
        var query = http.Request.Query;

        // Cross-repository mount: no bytes move when the caller may pull the blob from the other repository.
        if (query["mount"].ToString() is { Length: > 0 } mount && Digests.IsValid(mount)
            && query["from"].ToString() is { Length: > 0 } from && RegistryNames.Parse(from) is { } fromName
            && await can(caller, fromName, RegistryAction.Pull)
            && await RepositoryAsync(fromName, create: false, ct) is { } fromRepo
            && await LinkedAsync(fromRepo.Id, mount, ct) && store.Size(mount) is { } mountedSize)
        {
            if (await QuotaAsync(repo, mountedSize, mount, ct) is { } denied) return denied;
            await LinkAsync(repo.Id, mount, ct);
            return Created(http, BlobLocation(name, mount), mount);
        }

        var upload = new RegistryUpload { Id = Guid.NewGuid(), RepositoryId = repo.Id, CreatedAt = Now, UpdatedAt = Now };
        db.RegistryUploads.Add(upload);
        await db.SaveChangesAsync(ct);
        if (query["digest"].ToString() is { Length: > 0 })
            return await FinishAsync(http, name, repo, upload, ct);   // monolithic: POST with the whole blob
        return UploadProgress(http, name, upload.Id, 0);
    }

    private async Task<RegistryUpload?> UploadAsync(RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        if (!Guid.TryParseExact(id, "N", out var guid)) return null;
        return await db.RegistryUploads.FirstOrDefaultAsync(u => u.Id == guid
            && db.RegistryRepositories.Any(r => r.Id == u.RepositoryId && r.Name == name.Name), ct);
    }

    public async Task<IResult> PatchUploadAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await UploadAsync(name, id, ct);
        if (upload is null) return RegistryErrors.BlobUploadUnknown();
        var offset = store.UploadSize(upload.Id);
        var range = http.Request.Headers.ContentRange.ToString();
        if (range.Length > 0)
        {
            var start = range.Replace("bytes ", "").Split('-')[0];
            if (!long.TryParse(start, out var s) || s != offset)
                return UploadProgress(http, name, upload.Id, offset, 416);
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
            return UploadProgress(http, name, upload.Id, e.Expected, 416);
        }
        if (await QuotaAsync(repo, size, null, ct) is { } denied)
        {
            await DropUploadAsync(upload, ct);
            return denied;
        }
        upload.UpdatedAt = Now;
        await db.SaveChangesAsync(ct);
        return UploadProgress(http, name, upload.Id, size);
    }

    public async Task<IResult> UploadStatusAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await UploadAsync(name, id, ct);
        return upload is null ? RegistryErrors.BlobUploadUnknown() : UploadProgress(http, name, upload.Id, store.UploadSize(upload.Id), 204);
    }

    public async Task<IResult> CancelUploadAsync(RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await UploadAsync(name, id, ct);
        if (upload is null) return RegistryErrors.BlobUploadUnknown();
        await DropUploadAsync(upload, ct);
        return Results.NoContent();
    }

    private async Task DropUploadAsync(RegistryUpload upload, CancellationToken ct)
    {
        store.DeleteUpload(upload.Id);
        db.RegistryUploads.Remove(upload);
        await db.SaveChangesAsync(ct);
    }

    public async Task<IResult> FinishUploadAsync(HttpContext http, RegistryNames.Parsed name, string id, CancellationToken ct)
    {
        var upload = await UploadAsync(name, id, ct);
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
            await DropUploadAsync(upload, ct);
            return RegistryErrors.SizeInvalid($"blobs are limited to {e.Max} bytes");
        }
        var actual = await store.DigestUploadAsync(upload.Id, ct);
        if (actual != digest)
        {
            await DropUploadAsync(upload, ct);
            return RegistryErrors.DigestInvalid($"the content's digest is {actual}, not {digest}");
        }
        var size = store.UploadSize(upload.Id);
        if (await QuotaAsync(repo, size, digest, ct) is { } denied)
        {
            await DropUploadAsync(upload, ct);
            return denied;
        }
        store.Commit(upload.Id, digest);
        db.RegistryUploads.Remove(upload);
        await db.SaveChangesAsync(ct);
        await CommitBlobAsync(repo, digest, size, ct);
        return Created(http, BlobLocation(name, digest), digest);
    }

    public async Task<IResult> GetBlobAsync(HttpContext http, RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var repo = await RepositoryAsync(name, create: false, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        if (!await LinkedAsync(repo.Id, digest, ct) || store.Size(digest) is null) return RegistryErrors.BlobUnknown(digest);
        http.Response.Headers["Docker-Content-Digest"] = digest;
        http.Response.Headers.ETag = $"\"{digest}\"";
        return Results.File(store.OpenRead(digest), "application/octet-stream", enableRangeProcessing: true);
    }

    public async Task<IResult> DeleteBlobAsync(RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var n = await db.RegistryRepositoryBlobs
            .Where(l => l.Digest == digest && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.Name == name.Name))
            .ExecuteDeleteAsync(ct);
        return n == 0 ? RegistryErrors.BlobUnknown(digest) : Results.StatusCode(202);
    }

    private async Task<RegistryManifest?> ResolveAsync(RegistryRepository repo, string reference, CancellationToken ct)
    {
        var digest = Digests.IsValid(reference) ? reference
            : await db.RegistryTags.Where(t => t.RepositoryId == repo.Id && t.Name == reference).Select(t => t.ManifestDigest).FirstOrDefaultAsync(ct);
        return digest is null ? null
            : await db.RegistryManifests.FirstOrDefaultAsync(m => m.RepositoryId == repo.Id && m.Digest == digest, ct);
    }

    public async Task<IResult> GetManifestAsync(HttpContext http, RegistryNames.Parsed name, string reference, CancellationToken ct)
    {
        var repo = await RepositoryAsync(name, create: false, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        var manifest = await ResolveAsync(repo, reference, ct);
        if (manifest is null || store.Size(manifest.Digest) is null) return RegistryErrors.ManifestUnknown(reference);
        http.Response.Headers["Docker-Content-Digest"] = manifest.Digest;
        http.Response.Headers.ETag = $"\"{manifest.Digest}\"";
        return Results.File(store.OpenRead(manifest.Digest), manifest.MediaType);
    }

    public async Task<IResult> PutManifestAsync(HttpContext http, RegistryNames.Parsed name, string reference, RegistryCaller caller, CancellationToken ct)
    {
        var isDigest = Digests.IsValid(reference);
        if (!isDigest && !RegistryNames.IsTag(reference)) return RegistryErrors.TagInvalid(reference);
        if (http.Request.ContentLength > ManifestDocument.MaxBytes)
            return RegistryErrors.SizeInvalid($"manifests are limited to {ManifestDocument.MaxBytes} bytes");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await http.Request.Body.ReadAsync(chunk, ct)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > ManifestDocument.MaxBytes)
                return RegistryErrors.SizeInvalid($"manifests are limited to {ManifestDocument.MaxBytes} bytes");
        }
        var bytes = buffer.ToArray();
        var (doc, error) = ManifestDocument.Parse(bytes, http.Request.ContentType);
        if (doc is null) return RegistryErrors.ManifestInvalid(error!);
        var digest = Digests.Of(bytes);
        if (isDigest && digest != reference)
            return RegistryErrors.DigestInvalid($"the manifest's digest is {digest}, not {reference}");

        var repo = (await RepositoryAsync(name, create: true, ct))!;
        foreach (var blob in doc.Blobs)
            if (!await LinkedAsync(repo.Id, blob, ct) || store.Size(blob) is null)
                return RegistryErrors.ManifestBlobUnknown(blob);
        foreach (var child in doc.Manifests)
            if (!await db.RegistryManifests.AnyAsync(m => m.RepositoryId == repo.Id && m.Digest == child, ct))
                return RegistryErrors.ManifestBlobUnknown(child);

        await store.PutAsync(digest, bytes, ct);
        await CommitBlobAsync(repo, digest, bytes.Length, ct);
        if (!await db.RegistryManifests.AnyAsync(m => m.RepositoryId == repo.Id && m.Digest == digest, ct))
        {
            var manifest = new RegistryManifest
            {
                Id = Guid.NewGuid(), RepositoryId = repo.Id, Digest = digest, MediaType = doc.MediaType, Size = bytes.Length,
                ArtifactType = doc.ArtifactType, SubjectDigest = doc.SubjectDigest, AnnotationsJson = doc.AnnotationsJson, CreatedAt = Now,
            };
            db.RegistryManifests.Add(manifest);
            db.RegistryManifestReferences.AddRange(doc.Blobs.Select(b => new RegistryManifestReference { ManifestId = manifest.Id, Digest = b }));
            db.RegistryManifestReferences.AddRange(doc.Manifests.Select(m => new RegistryManifestReference { ManifestId = manifest.Id, Digest = m, IsManifest = true }));
            await SaveIgnoringRaceAsync(ct);
        }
        if (!isDigest)
            await TagAsync(repo.Id, reference, digest, ct);
        await AuditAsync(repo, caller, "registry.manifest.put", $"/v2/{name.Name}/manifests/{reference}", ct);

        if (doc.SubjectDigest is not null)
            http.Response.Headers["OCI-Subject"] = doc.SubjectDigest;
        return Created(http, $"/v2/{name.Name}/manifests/{digest}", digest);
    }

    private async Task TagAsync(Guid repositoryId, string tag, string digest, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var existing = await db.RegistryTags.FirstOrDefaultAsync(t => t.RepositoryId == repositoryId && t.Name == tag, ct);
            if (existing is null)
                db.RegistryTags.Add(new RegistryTag { RepositoryId = repositoryId, Name = tag, ManifestDigest = digest, UpdatedAt = Now });
            else
                (existing.ManifestDigest, existing.UpdatedAt) = (digest, Now);
            try
            {
                await db.SaveChangesAsync(ct);
                return;
            }
            catch (DbUpdateException)
            {
                db.ChangeTracker.Clear();   // a concurrent push of the same tag: the last one wins
            }
        }
    }

    public async Task<IResult> DeleteManifestAsync(HttpContext http, RegistryNames.Parsed name, string reference, RegistryCaller caller, CancellationToken ct)
    {
        var repo = await RepositoryAsync(name, create: false, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        int deleted;
        if (Digests.IsValid(reference))
        {
            await db.RegistryTags.Where(t => t.RepositoryId == repo.Id && t.ManifestDigest == reference).ExecuteDeleteAsync(ct);
            deleted = await db.RegistryManifests.Where(m => m.RepositoryId == repo.Id && m.Digest == reference).ExecuteDeleteAsync(ct);
        }
        else
        {
            deleted = await db.RegistryTags.Where(t => t.RepositoryId == repo.Id && t.Name == reference).ExecuteDeleteAsync(ct);
        }
        if (deleted == 0) return RegistryErrors.ManifestUnknown(reference);
        await AuditAsync(repo, caller, "registry.manifest.delete", $"/v2/{name.Name}/manifests/{reference}", ct);
        return Results.StatusCode(202);
    }

    public async Task<IResult> TagsAsync(HttpContext http, RegistryNames.Parsed name, CancellationToken ct)
    {
        if (!TryPage(http, out var n, out var last)) return RegistryErrors.PaginationInvalid();
        var repo = await RepositoryAsync(name, create: false, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        var query = db.RegistryTags.Where(t => t.RepositoryId == repo.Id);
        if (last is not null) query = query.Where(t => string.Compare(t.Name, last) > 0);
        var tags = await query.OrderBy(t => t.Name).Select(t => t.Name).Take(n + 1).ToListAsync(ct);
        if (tags.Count > n)
        {
            tags.RemoveAt(n);
            http.Response.Headers.Link = $"</v2/{name.Name}/tags/list?n={n}&last={Uri.EscapeDataString(tags[^1])}>; rel=\"next\"";
        }
        return Results.Json(new { name = name.Name, tags });
    }

    public async Task<IResult> CatalogAsync(HttpContext http, CancellationToken ct)
    {
        if (!TryPage(http, out var n, out var last)) return RegistryErrors.PaginationInvalid();
        var query = db.RegistryRepositories.AsQueryable();
        if (last is not null) query = query.Where(r => string.Compare(r.Name, last) > 0);
        var names = await query.OrderBy(r => r.Name).Select(r => r.Name).Take(n + 1).ToListAsync(ct);
        if (names.Count > n)
        {
            names.RemoveAt(n);
            http.Response.Headers.Link = $"</v2/_catalog?n={n}&last={Uri.EscapeDataString(names[^1])}>; rel=\"next\"";
        }
        return Results.Json(new { repositories = names });
    }

    private static bool TryPage(HttpContext http, out int n, out string? last)
    {
        last = http.Request.Query["last"].ToString() is { Length: > 0 } l ? l : null;
        n = 100;
        var raw = http.Request.Query["n"].ToString();
        return raw.Length == 0 || (int.TryParse(raw, out n) && n is >= 1 and <= 1000);
    }

    public async Task<IResult> ReferrersAsync(HttpContext http, RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var repo = await RepositoryAsync(name, create: false, ct);
        var rows = repo is null ? [] : await db.RegistryManifests.AsNoTracking()
            .Where(m => m.RepositoryId == repo.Id && m.SubjectDigest == digest).OrderBy(m => m.CreatedAt).ToListAsync(ct);
        var artifactType = http.Request.Query["artifactType"].ToString();
        if (artifactType.Length > 0)
        {
            rows = rows.Where(r => r.ArtifactType == artifactType).ToList();
            http.Response.Headers["OCI-Filters-Applied"] = "artifactType";
        }
        var index = new
        {
            schemaVersion = 2,
            mediaType = ManifestDocument.OciIndex,
            manifests = rows.Select(r => new
            {
                mediaType = r.MediaType, digest = r.Digest, size = r.Size, artifactType = r.ArtifactType,
                annotations = r.AnnotationsJson is null ? (JsonElement?)null : JsonDocument.Parse(r.AnnotationsJson).RootElement,
            }).ToList(),
        };
        return Results.Json(index, new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull },
            ManifestDocument.OciIndex);
    }

    private async Task AuditAsync(RegistryRepository repo, RegistryCaller caller, string action, string target, CancellationToken ct)
    {
        var email = await db.Users.Where(u => u.Id == caller.UserId).Select(u => u.Email).FirstOrDefaultAsync(ct);
        db.AuditEvents.Add(new AuditEvent
        {
            At = Now, ActorId = caller.UserId, ActorEmail = email, Action = action, TeamId = repo.TeamId,
            Target = target.Length > 400 ? target[..400] : target, Outcome = "success", Status = 201,
        });
        await db.SaveChangesAsync(ct);
        LogPushed(log, action, target);
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "{Action} {Target}")]
    private static partial void LogPushed(ILogger logger, string action, string target);
}
