using Hangfire;
using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>Creates numbered builds and hands them to Hangfire's "builds" queue (by id: the job reads the row).</summary>
public sealed partial class BuildQueue(PlatformDbContext db, IBackgroundJobClient jobs, TimeProvider clock)
{
    [System.Text.RegularExpressions.GeneratedRegex("^([0-9a-f]{40}|[0-9a-f]{64})$")]
    private static partial System.Text.RegularExpressions.Regex CommitId();

    /// <summary>A full commit id (SHA-1 or SHA-256), as builds record them.</summary>
    public static bool IsCommitId(string value) => CommitId().IsMatch(value);

    public async Task<Build> QueueAsync(App app, string commit, string trigger, string? source, string? userId, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var number = (await db.Builds.Where(b => b.AppId == app.Id).MaxAsync(b => (int?)b.Number, ct) ?? 0) + 1;
            var build = new Build
            {
                Id = Guid.CreateVersion7(), AppId = app.Id, Number = number, Commit = commit, State = BuildStates.Queued,
                Trigger = trigger, Source = source, CreatedBy = userId, CreatedAt = clock.GetUtcNow().UtcDateTime,
            };
            db.Builds.Add(build);
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException) when (attempt < 3)
            {
                db.Entry(build).State = EntityState.Detached;   // two builds of one app queued at once took the same number
                continue;
            }
            Enqueue(build.Id);
            return build;
        }
    }

    public void Enqueue(Guid build) => jobs.Enqueue<BuildJob>(j => j.RunAsync(build, CancellationToken.None));
}
