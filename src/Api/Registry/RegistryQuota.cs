using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// The team's <c>registryGiB</c>: the bytes of distinct blobs readable through its repositories, plus the bytes of
/// its uploads still in flight (a stream that never finishes still fills the disk). Content the team stores already
/// costs nothing again; <c>library/</c> repositories belong to no team.
/// </summary>
public sealed class RegistryQuota(PlatformDbContext db)
{
    public const long GiB = 1024L * 1024 * 1024;

    /// <summary>Bytes of distinct blobs readable through the team's repositories: what counts against registryGiB.</summary>
    public Task<long> TeamBytesAsync(Guid teamId, CancellationToken ct) =>
        db.RegistryBlobs.Where(b => db.RegistryRepositoryBlobs.Any(l => l.Digest == b.Digest
                && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.TeamId == teamId)))
            .SumAsync(b => b.Size, ct);

    /// <summary>The team's limit and what it uses: stored blobs and the uploads in flight other than <paramref name="except"/>.</summary>
    private async Task<(long Limit, long Used)> FiguresAsync(Guid teamId, Guid? except, CancellationToken ct)
    {
        var limitGiB = await db.Teams.Where(t => t.Id == teamId).Select(t => t.Quota.RegistryGiB).FirstAsync(ct);
        var inFlight = await db.RegistryUploads
            .Where(u => u.Id != except && db.RegistryRepositories.Any(r => r.Id == u.RepositoryId && r.TeamId == teamId))
            .SumAsync(u => u.Bytes, ct);
        return (limitGiB * GiB, await TeamBytesAsync(teamId, ct) + inFlight);
    }

    private static IResult Denied(long asked, long used, long limit) =>
        RegistryErrors.Error(403, "DENIED", $"the team's registry quota is exceeded: {asked} more bytes asked, {used} used of {limit}",
            new { resource = "registryGiB", scope = "team", asked, used, limit, unit = "bytes" });

    /// <summary>Refuses (DENIED) a blob that would take the team past its registry quota; null when it fits.
    /// <paramref name="upload"/> is the session the blob comes from, whose own bytes in flight are not counted twice.</summary>
    public async Task<IResult?> CheckAsync(RegistryRepository repo, long size, string? digest, CancellationToken ct, Guid? upload = null)
    {
        if (repo.TeamId is not { } teamId) return null;
        if (digest is not null && await db.RegistryRepositoryBlobs.AnyAsync(l => l.Digest == digest
                && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.TeamId == teamId), ct))
            return null;   // the team stores it already: no new bytes
        var (limit, used) = await FiguresAsync(teamId, upload, ct);
        return used + size <= limit ? null : Denied(size, used, limit);
    }

    /// <summary>
    /// How large an upload session may grow while it streams: the blob limit, and for a team repository what is left
    /// of registryGiB. Each call first records the session's size so far, so the team's other uploads streaming at
    /// the same time count it (they ask every <see cref="UploadLimits.Window"/> bytes).
    /// </summary>
    public UploadLimit Limit(RegistryRepository repo, Guid upload, long maxBlobBytes) => async (size, ct) =>
    {
        await db.RegistryUploads.Where(u => u.Id == upload).ExecuteUpdateAsync(s => s.SetProperty(u => u.Bytes, size), ct);
        if (repo.TeamId is not { } teamId) return maxBlobBytes;
        var (limit, used) = await FiguresAsync(teamId, upload, ct);
        return Math.Min(maxBlobBytes, Math.Max(0, limit - used));
    };

    /// <summary>The problem for a chunk <see cref="Limit"/> stopped on the quota: <paramref name="asked"/> more bytes on top of the session's <paramref name="sessionBytes"/>.</summary>
    public async Task<IResult> UploadDeniedAsync(Guid teamId, Guid upload, long sessionBytes, long asked, CancellationToken ct)
    {
        var (limit, used) = await FiguresAsync(teamId, upload, ct);
        return Denied(asked, used + sessionBytes, limit);
    }
}
