using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>
/// The build queue's admission: a Queued build becomes Running only when its team runs fewer than its
/// <c>concurrentBuilds</c>, no older build of the team waits and the app builds nothing else. One
/// conditional update, under this host's claim lock and, on PostgreSQL, a team advisory transaction lock,
/// so replicas cannot both start past the limit. The claim records the replica (<c>Platform:ReplicaName</c>), so the
/// replica's next start recovers its own builds and no other's (<see cref="BuildRecovery"/>).
/// </summary>
public sealed class BuildClaim(PlatformDbContext db, LocalBuilds local, Microsoft.Extensions.Options.IOptions<Infrastructure.PlatformOptions> options, TimeProvider clock)
{
    public enum Outcome { Gone, Wait, Claimed }

    public async Task<Outcome> TryClaimAsync(Guid buildId, CancellationToken ct)
    {
        await local.ClaimLock.WaitAsync(ct);
        try
        {
            var strategy = db.Database.CreateExecutionStrategy();
            return await strategy.ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                var b = await db.Builds.AsNoTracking().Where(x => x.Id == buildId)
                    .Select(x => new { x.State, x.CancelRequested, x.CreatedAt, x.AppId, TeamId = x.App!.Project!.TeamId, Limit = x.App.Project.Team!.Quota.ConcurrentBuilds })
                    .FirstOrDefaultAsync(ct);
                if (b is null || b.State != BuildStates.Queued) return Outcome.Gone;
                if (db.Database.IsNpgsql())
                    await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({0x706C6274_00000000L ^ b.TeamId.GetHashCode()})", ct);
                var now = clock.GetUtcNow().UtcDateTime;
                var replica = options.Value.EffectiveReplicaName;
                if (b.CancelRequested)
                {
                    await db.Builds.Where(x => x.Id == buildId && x.State == BuildStates.Queued).ExecuteUpdateAsync(s => s
                        .SetProperty(x => x.State, BuildStates.Cancelled).SetProperty(x => x.FinishedAt, now), ct);
                    await tx.CommitAsync(ct);
                    return Outcome.Gone;
                }
                var team = db.Builds.Where(x => x.App!.Project!.TeamId == b.TeamId);
                var running = await team.CountAsync(x => x.State == BuildStates.Running, ct);
                var olderWaiting = await team.AnyAsync(x => x.State == BuildStates.Queued && (x.CreatedAt < b.CreatedAt || (x.CreatedAt == b.CreatedAt && x.Id.CompareTo(buildId) < 0)), ct);
                var appBusy = await db.Builds.AnyAsync(x => x.AppId == b.AppId && x.State == BuildStates.Running, ct);
                if (running >= Math.Max(1, b.Limit) || olderWaiting || appBusy) return Outcome.Wait;
                var claimed = await db.Builds.Where(x => x.Id == buildId && x.State == BuildStates.Queued).ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.State, BuildStates.Running).SetProperty(x => x.StartedAt, now)
                    .SetProperty(x => x.HeartbeatAt, now).SetProperty(x => x.Attempts, x => x.Attempts + 1)
                    .SetProperty(x => x.ClaimedBy, replica), ct);
                await tx.CommitAsync(ct);
                if (claimed != 1) return Outcome.Gone;
                local.Add(buildId, b.AppId);   // before the lock is released: recovery never sees it Running here but unlisted
                return Outcome.Claimed;
            });
        }
        finally
        {
            local.ClaimLock.Release();
        }
    }
}
