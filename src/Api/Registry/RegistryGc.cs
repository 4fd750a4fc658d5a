using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Garbage collection of the registry, a Hangfire recurring job. Roots are tags, images named by
/// digest in apps, the digests of every release and of every placed instance, and anything younger than the grace period (a push uploads blobs before its
/// manifest, so fresh unreferenced content is a push in flight, not garbage). From the roots it keeps
/// child manifests of indexes and referrers of kept manifests, then the blobs those manifests name.
/// Idempotent: a second run right after the first frees nothing.
/// </summary>
public sealed partial class RegistryGc(
    PlatformDbContext db, IBlobStore store, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<RegistryGc> log)
{
    public const string JobId = "registry-gc";

    public sealed record Report(int Uploads, int Manifests, int Links, int Blobs, long Bytes);

    [Hangfire.AutomaticRetry(Attempts = 2)]
    [Hangfire.DisableConcurrentExecution(timeoutInSeconds: 600)]
    public async Task<Report> RunAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var o = options.Value.Registry;
        var cutoff = now - o.GcGracePeriod;

        // 1. Abandoned uploads, and files a crash left half-written.
        var expired = await db.RegistryUploads.Where(u => u.UpdatedAt < now - o.UploadExpiry).ToListAsync(ct);
        foreach (var u in expired) store.DeleteUpload(u.Id);
        db.RegistryUploads.RemoveRange(expired);
        await db.SaveChangesAsync(ct);
        var live = (await db.RegistryUploads.Select(u => u.Id).ToListAsync(ct)).Select(id => id.ToString("N")).ToHashSet();
        foreach (var file in store.StaleTemporaryFiles(now - o.UploadExpiry))
            if (!live.Contains(Path.GetFileName(file))) File.Delete(file);

        // 2. Manifests reachable from the roots, per repository.
        var manifests = await db.RegistryManifests.AsNoTracking()
            .Select(m => new { m.Id, m.RepositoryId, m.Digest, m.SubjectDigest, m.CreatedAt }).ToListAsync(ct);
        var children = (await db.RegistryManifestReferences.AsNoTracking().Where(r => r.IsManifest).Select(r => new { r.ManifestId, r.Digest }).ToListAsync(ct))
            .ToLookup(r => r.ManifestId, r => r.Digest);
        var tagged = (await db.RegistryTags.AsNoTracking().Select(t => new { t.RepositoryId, t.ManifestDigest }).ToListAsync(ct))
            .Select(t => (t.RepositoryId, t.ManifestDigest)).ToHashSet();
        // Digests something may still run: apps naming one, every release (pinned to the digest its tag named then,
        // so a rollback finds its image after the tag moved) and every placed instance (a node may restart or
        // re-pull it).
        var pinnedImages = (await db.Apps.AsNoTracking().Where(a => a.Image != null && a.Image.Contains("@sha256:")).Select(a => a.Image!).ToListAsync(ct))
            .Concat(await db.Releases.AsNoTracking().Where(r => r.Image.Contains("@sha256:")).Select(r => r.Image).Distinct().ToListAsync(ct));
        var pinnedDigests = pinnedImages.Select(i => i[(i.IndexOf('@') + 1)..])
            .Concat(await db.Instances.AsNoTracking().Select(i => i.ImageDigest).Distinct().ToListAsync(ct)).ToHashSet();

        var byKey = manifests.ToDictionary(m => (m.RepositoryId, m.Digest));
        var kept = new HashSet<Guid>();
        var queue = new Queue<(Guid, string)>(manifests
            .Where(m => tagged.Contains((m.RepositoryId, m.Digest)) || pinnedDigests.Contains(m.Digest) || m.CreatedAt >= cutoff)
            .Select(m => (m.RepositoryId, m.Digest)));
        var referrers = manifests.Where(m => m.SubjectDigest != null).ToLookup(m => (m.RepositoryId, m.SubjectDigest!));
        while (queue.TryDequeue(out var key))
        {
            if (!byKey.TryGetValue(key, out var m) || !kept.Add(m.Id)) continue;
            foreach (var child in children[m.Id]) queue.Enqueue((m.RepositoryId, child));
            foreach (var r in referrers[key]) queue.Enqueue((r.RepositoryId, r.Digest));
        }
        var doomed = manifests.Where(m => !kept.Contains(m.Id)).Select(m => m.Id).ToList();
        foreach (var batch in doomed.Chunk(500))
            await db.RegistryManifests.Where(m => batch.Contains(m.Id)).ExecuteDeleteAsync(ct);

        // 3. Links from a repository to blobs none of its kept manifests needs (old enough).
        var needed = (await db.RegistryManifestReferences.AsNoTracking().Where(r => !r.IsManifest)
                .Join(db.RegistryManifests, r => r.ManifestId, m => m.Id, (r, m) => new { m.RepositoryId, r.Digest }).ToListAsync(ct))
            .Select(x => (x.RepositoryId, x.Digest))
            .Concat(manifests.Where(m => kept.Contains(m.Id)).Select(m => (m.RepositoryId, m.Digest)))
            .ToHashSet();
        var links = await db.RegistryRepositoryBlobs.AsNoTracking().Where(l => l.CreatedAt < cutoff).ToListAsync(ct);
        var unlinked = 0;
        foreach (var l in links.Where(l => !needed.Contains((l.RepositoryId, l.Digest))))
            unlinked += await db.RegistryRepositoryBlobs.Where(x => x.RepositoryId == l.RepositoryId && x.Digest == l.Digest && x.CreatedAt < cutoff).ExecuteDeleteAsync(ct);

        // 4. Blobs no repository links any more: rows, then files.
        var orphans = await db.RegistryBlobs.Where(b => b.CreatedAt < cutoff && !db.RegistryRepositoryBlobs.Any(l => l.Digest == b.Digest))
            .Select(b => b.Digest).ToListAsync(ct);
        var (blobs, bytes) = await DeleteUnlinkedAsync(db, store, orphans, ct, olderThan: cutoff);
        var report = new Report(expired.Count, doomed.Count, unlinked, blobs, bytes);
        LogRan(log, report.Uploads, report.Manifests, report.Links, report.Blobs, report.Bytes);
        return report;
    }

    /// <summary>
    /// Deletes those of <paramref name="digests"/> that no repository links (row, then file); a blob linked again
    /// meanwhile by a push, or still linked by another repository, stays. Returns how many went and their bytes.
    /// </summary>
    public static async Task<(int Blobs, long Bytes)> DeleteUnlinkedAsync(PlatformDbContext db, IBlobStore store, IReadOnlyCollection<string> digests,
        CancellationToken ct, DateTime? olderThan = null)
    {
        long bytes = 0;
        var blobs = 0;
        foreach (var digest in digests)
        {
            // The row's delete and the file's go in one transaction: an upload committing the same digest touches
            // the row first (and so waits for this transaction, or makes the row too young to delete) and moves its
            // file in only after that, so the file it puts in place is never the one deleted here.
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var size = await db.RegistryBlobs.Where(x => x.Digest == digest).Select(x => (long?)x.Size).FirstOrDefaultAsync(ct);
            if (size is null || await db.RegistryBlobs
                    .Where(x => x.Digest == digest && (olderThan == null || x.CreatedAt < olderThan) && !db.RegistryRepositoryBlobs.Any(l => l.Digest == x.Digest))
                    .ExecuteDeleteAsync(ct) == 0)
                continue;   // linked or touched again meanwhile by a push
            await store.DeleteAsync(digest, ct);
            await tx.CommitAsync(ct);
            bytes += size.Value;
            blobs++;
        }
        return (blobs, bytes);
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information,
        Message = "Registry GC removed {Uploads} expired uploads, {Manifests} manifests, {Links} blob links and {Blobs} blobs ({Bytes} bytes freed)")]
    private static partial void LogRan(ILogger logger, int uploads, int manifests, int links, int blobs, long bytes);
}
