using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// The team's <c>registryGiB</c>: the bytes of distinct blobs readable through its repositories. Content
/// the team stores already costs nothing again; <c>library/</c> repositories belong to no team.
/// </summary>
public sealed class RegistryQuota(PlatformDbContext db)
{
    public const long GiB = 1024L * 1024 * 1024;

    /// <summary>Bytes of distinct blobs readable through the team's repositories: what counts against registryGiB.</summary>
    public Task<long> TeamBytesAsync(Guid teamId, CancellationToken ct) =>
        db.RegistryBlobs.Where(b => db.RegistryRepositoryBlobs.Any(l => l.Digest == b.Digest
                && db.RegistryRepositories.Any(r => r.Id == l.RepositoryId && r.TeamId == teamId)))
            .SumAsync(b => b.Size, ct);

    /// <summary>Refuses (DENIED) a blob that would take the team past its registry quota; null when it fits.</summary>
    public async Task<IResult?> CheckAsync(RegistryRepository repo, long size, string? digest, CancellationToken ct)
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
}
