using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Manifests (the spec's "pulling manifests", "pushing manifests", "deleting manifests" and content
/// discovery: tags list and referrers). A manifest is accepted only when every blob and child
/// manifest it names is already in the repository; its bytes are stored by digest like a blob, and
/// its references and subject are recorded so lists and the collector never read the store.
/// </summary>
public sealed partial class RegistryManifests(
    PlatformDbContext db, IBlobStore store, RegistryRepositories repositories, TimeProvider clock, ILogger<RegistryManifests> log)
{
    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    private async Task<RegistryManifest?> ResolveAsync(RegistryRepository repo, string reference, CancellationToken ct)
    {
        var digest = Digests.IsValid(reference) ? reference
            : await db.RegistryTags.Where(t => t.RepositoryId == repo.Id && t.Name == reference).Select(t => t.ManifestDigest).FirstOrDefaultAsync(ct);
        return digest is null ? null
            : await db.RegistryManifests.FirstOrDefaultAsync(m => m.RepositoryId == repo.Id && m.Digest == digest, ct);
    }

    /// <summary><c>GET</c>/<c>HEAD</c> by tag or digest, with the media type it was pushed with.</summary>
    public async Task<IResult> GetAsync(HttpContext http, RegistryNames.Parsed name, string reference, CancellationToken ct)
    {
        var repo = await repositories.FindAsync(name, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        var manifest = await ResolveAsync(repo, reference, ct);
        if (manifest is null || await store.OpenReadAsync(manifest.Digest, ct) is not { } content) return RegistryErrors.ManifestUnknown(reference);
        http.Response.Headers["Docker-Content-Digest"] = manifest.Digest;
        http.Response.Headers.ETag = $"\"{manifest.Digest}\"";
        return Results.File(content, manifest.MediaType);
    }

    public async Task<IResult> PutAsync(HttpContext http, RegistryNames.Parsed name, string reference, RegistryCaller caller, CancellationToken ct)
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

        var repo = await repositories.GetOrCreateAsync(name, ct);
        foreach (var blob in doc.Blobs)
            if (!await repositories.LinkedAsync(repo.Id, blob, ct) || await store.SizeAsync(blob, ct) is null)
                return RegistryErrors.ManifestBlobUnknown(blob);
        foreach (var child in doc.Manifests)
            if (!await db.RegistryManifests.AnyAsync(m => m.RepositoryId == repo.Id && m.Digest == child, ct))
                return RegistryErrors.ManifestBlobUnknown(child);

        // Rows first, then bytes, as uploads commit: the collector never deletes a file put in place after its row was touched.
        await repositories.CommitBlobAsync(repo, digest, bytes.Length, ct);
        await store.PutAsync(digest, bytes, ct);
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
            await repositories.SaveIgnoringRaceAsync(ct);
        }
        if (!isDigest)
            await TagAsync(repo.Id, reference, digest, ct);
        await AuditAsync(repo, caller, "registry.manifest.put", $"/v2/{name.Name}/manifests/{reference}", ct);

        if (doc.SubjectDigest is not null)
            http.Response.Headers["OCI-Subject"] = doc.SubjectDigest;
        return RegistryResults.Created(http, $"/v2/{name.Name}/manifests/{digest}", digest);
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

    /// <summary>By digest: the manifest and every tag pointing at it; by tag: only the tag.</summary>
    public async Task<IResult> DeleteAsync(RegistryNames.Parsed name, string reference, RegistryCaller caller, CancellationToken ct)
    {
        var repo = await repositories.FindAsync(name, ct);
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

    /// <summary><c>GET …/tags/list</c>: tags in order, <c>n</c>/<c>last</c> paging with a <c>Link</c> to the next page.</summary>
    public async Task<IResult> TagsAsync(HttpContext http, RegistryNames.Parsed name, CancellationToken ct)
    {
        if (!RegistryResults.TryPage(http, out var n, out var last)) return RegistryErrors.PaginationInvalid();
        var repo = await repositories.FindAsync(name, ct);
        if (repo is null) return RegistryErrors.NameUnknown(name.Name);
        var query = db.RegistryTags.Where(t => t.RepositoryId == repo.Id);
        if (last is not null) query = query.Where(t => string.Compare(t.Name, last) > 0);
        var tags = await query.OrderBy(t => t.Name).Select(t => t.Name).Take(n + 1).ToListAsync(ct);
        RegistryResults.LinkNext(http, tags, n, $"/v2/{name.Name}/tags/list?n={n}");
        return Results.Json(new { name = name.Name, tags });
    }

    /// <summary><c>GET …/referrers/{digest}</c>: an OCI index of the manifests whose subject is the digest, filtered by <c>artifactType</c>.</summary>
    public async Task<IResult> ReferrersAsync(HttpContext http, RegistryNames.Parsed name, string digest, CancellationToken ct)
    {
        if (!Digests.IsValid(digest)) return RegistryErrors.DigestInvalid("invalid digest");
        var repo = await repositories.FindAsync(name, ct);
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
