using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>
/// No build stays Running after its Api died. At start (before this replica takes builds) and every few
/// seconds: a Running build whose heartbeat is older than Platform:Builds:StaleAfterSeconds — or, at start,
/// one this replica claimed (<c>Platform:ReplicaName</c>), so its predecessor ran it — has its leftover
/// processes killed (its cgroup), its network name-space, scratch folder and half-made working containers
/// removed, and is queued again once; a second loss fails it with a reason. Scratch folders and build
/// name-spaces that belong to no build running on this machine are removed at start; another replica's
/// builds are never touched at start (several replicas may share a machine and its work folder).
/// </summary>
public sealed partial class BuildRecovery(
    IServiceScopeFactory scopes, LocalBuilds local, Buildah buildah, BuildNetwork network, DataLayout layout, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<BuildRecovery> log)
    : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.Builds.Workers > 0)
        {
            try
            {
                await RecoverAsync(atStart: true, cancellationToken);
            }
            catch (Exception e) when (e is DbUpdateException or System.Data.Common.DbException or InvalidOperationException or IOException or TimeoutException)
            {
                LogFailed(log, e.Message);
            }
        }
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        if (options.Value.Builds.Workers == 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, options.Value.Builds.StaleAfterSeconds / 3)));
        while (await timer.WaitForNextTickAsync(ct))
        {
            try
            {
                await RecoverAsync(atStart: false, ct);
            }
            catch (Exception e) when (e is DbUpdateException or System.Data.Common.DbException or InvalidOperationException or IOException or TimeoutException)
            {
                LogFailed(log, e.Message);
            }
        }
    }

    public async Task RecoverAsync(bool atStart, CancellationToken ct)
    {
        var o = options.Value;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        var queue = scope.ServiceProvider.GetRequiredService<BuildQueue>();
        var now = clock.GetUtcNow().UtcDateTime;
        var staleBefore = now.AddSeconds(-o.Builds.StaleAfterSeconds);
        var running = await db.Builds.AsNoTracking().Where(b => b.State == BuildStates.Running)
            .Select(b => new { b.Id, b.AppId, b.Number, b.HeartbeatAt, b.Attempts, b.ClaimedBy }).ToListAsync(ct);
        var me = o.EffectiveReplicaName;
        foreach (var b in running)
        {
            if (local.Runs(b.Id)) continue;
            // At start, this replica's own builds (its predecessor's, which ran here) need no stale heartbeat to be
            // recovered; another replica's build, even one running on this machine, is left to its replica.
            var ranHere = atStart && (b.ClaimedBy == me || (b.ClaimedBy is null && BuildCgroup.Existing(o.Builds.CgroupName, b.Id).Exists));
            if (!ranHere && b.HeartbeatAt is { } beat && beat >= staleBefore) continue;

            await BuildCgroup.Existing(o.Builds.CgroupName, b.Id).KillAndRemoveAsync();
            await BuildNetwork.RemoveAsync(b.Id, ct);
            foreach (var (folder, _) in layout.BuildScratchFolders().Where(f => f.Build == b.Id))
                Directory.Delete(folder, recursive: true);
            // Working containers are per app: not while another build of the app runs here.
            if (!local.BuildsApp(b.AppId)) await buildah.RemoveWorkingContainersAsync(b.AppId);

            var retry = b.Attempts < 2;
            var reason = "The Api running this build stopped twice during it: push again or start a build.";
            var target = db.Builds.Where(x => x.Id == b.Id && x.State == BuildStates.Running && x.HeartbeatAt == b.HeartbeatAt);
            var changed = retry
                ? await target.ExecuteUpdateAsync(s => s.SetProperty(x => x.State, BuildStates.Queued).SetProperty(x => x.HeartbeatAt, (DateTime?)null), ct)
                : await target.ExecuteUpdateAsync(s => s.SetProperty(x => x.State, BuildStates.Failed).SetProperty(x => x.Reason, reason).SetProperty(x => x.FinishedAt, now), ct);
            if (changed == 0) continue;   // another replica took it, or it came back
            Directory.CreateDirectory(layout.BuildLogs);
            await File.AppendAllTextAsync(layout.BuildLog(b.Id), retry ? "==> the Api running this build stopped; retrying\n" : $"==> failed: {reason}\n", ct);
            LogRecovered(log, b.Number, b.Id, retry ? "queued again" : "failed");
            if (retry) queue.Enqueue(b.Id);
        }

        if (!atStart) return;
        // Scratch folders of builds that run nowhere (the work folder may be another replica's on this machine as well).
        var elsewhere = (await db.Builds.AsNoTracking().Where(b => b.State == BuildStates.Running && b.ClaimedBy != null && b.ClaimedBy != me)
            .Select(b => b.Id).ToListAsync(ct)).ToHashSet();
        foreach (var (folder, build) in layout.BuildScratchFolders())
            if (!local.Runs(build) && !elsewhere.Contains(build))
                Directory.Delete(folder, recursive: true);
        if (o.Builds.Network == "isolated" && Environment.UserName == "root")
            await network.RemoveLeftoversAsync(   // a build running anywhere on this machine has its cgroup
                BuildCgroup.Present(o.Builds.CgroupName).Concat(local.Builds).Select(BuildNetwork.NamespaceOf).ToHashSet(), ct);
    }

    [LoggerMessage(EventId = 72, Level = LogLevel.Warning, Message = "Build #{Number} ({Build}) lost its Api: {Outcome}")]
    private static partial void LogRecovered(ILogger logger, int number, Guid build, string outcome);

    [LoggerMessage(EventId = 73, Level = LogLevel.Warning, Message = "Build recovery failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
