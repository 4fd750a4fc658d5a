using Microsoft.EntityFrameworkCore;
using Platform.Api.Builds;
using Platform.Api.Git;
using Platform.Api.Infrastructure;
using Platform.Api.Registry;
using Platform.Api.Scheduling;
using Platform.Data;

namespace Platform.Api.Apps;

/// <summary>
/// The one way apps leave the platform, alone (app delete) or with their project or team. In two steps:
/// <see cref="PrepareAsync"/> inside the caller's transaction, before the rows go, and
/// <see cref="FinishAsync"/> after its commit. Guaranteed once both ran: the apps' instances are out of
/// every node's desired state in the same commit that deletes them (their nodes' revisions are bumped
/// and their long-polls woken, so the agents stop the containers at once and the scheduler neither
/// counts nor keeps them); their builds see their rows gone within a second and are killed (a queued
/// one never starts); their git repositories, build logs and layer caches are removed; and the
/// registry repositories that went with the project or team take with them every blob no other
/// repository links (content-addressed blobs shared with others stay). Best effort on files: a file
/// that cannot be removed is logged and never fails the request whose rows are already gone.
/// </summary>
public sealed partial class AppRemoval(
    PlatformDbContext db, PlacementService placement, ClusterSignals signals, GitRepositories repositories, Buildah buildah,
    LocalBuilds local, IBlobStore blobs, DataLayout layout, TimeProvider clock, ILogger<AppRemoval> log)
{
    /// <summary>How long <see cref="FinishAsync"/> waits for this host's cancelled builds to let go of their layer cache.</summary>
    private static readonly TimeSpan BuildsStop = TimeSpan.FromSeconds(30);

    /// <summary>What is left to remove once the rows are gone.</summary>
    public sealed record Plan(IReadOnlyList<Guid> Apps, IReadOnlyList<Guid> Nodes, IReadOnlyList<Guid> Builds, IReadOnlyList<string> Digests, IReadOnlyList<Guid> Uploads);

    /// <summary>
    /// Inside the caller's transaction, before <paramref name="apps"/> (and <paramref name="registry"/>, the
    /// repositories going with them) are deleted: removes the apps' instances and bumps their nodes' revisions,
    /// and notes what else goes.
    /// </summary>
    public async Task<Plan> PrepareAsync(IQueryable<App> apps, IQueryable<RegistryRepository>? registry, CancellationToken ct)
    {
        var ids = await apps.Select(a => a.Id).ToListAsync(ct);
        var nodes = await db.Instances.Where(i => ids.Contains(i.AppId)).Select(i => i.NodeId).Distinct().ToListAsync(ct);
        // Explicitly rather than by the cascade: the same commit that deletes the apps takes their instances
        // out of the desired state whatever the provider does with foreign keys.
        await db.Instances.Where(i => ids.Contains(i.AppId)).ExecuteDeleteAsync(ct);
        await placement.TouchAsync(nodes, ct);
        var builds = await db.Builds.Where(b => ids.Contains(b.AppId)).Select(b => b.Id).ToListAsync(ct);
        List<string> digests = [];
        List<Guid> uploads = [];
        if (registry is not null)
        {
            var repositoryIds = registry.Select(r => r.Id);
            digests = await db.RegistryRepositoryBlobs.Where(l => repositoryIds.Contains(l.RepositoryId)).Select(l => l.Digest).Distinct().ToListAsync(ct);
            uploads = await db.RegistryUploads.Where(u => repositoryIds.Contains(u.RepositoryId)).Select(u => u.Id).ToListAsync(ct);
        }
        return new Plan(ids, nodes, builds, digests, uploads);
    }

    /// <summary>After the commit: wakes the nodes and the router, then removes the files the rows described.</summary>
    public async Task FinishAsync(Plan plan)
    {
        signals.Signal(plan.Nodes, routes: true);
        foreach (var app in plan.Apps)
            Best(() => repositories.Delete(app), "git repository", app);
        foreach (var build in plan.Builds)
            Best(() => File.Delete(layout.BuildLog(build)), "build log", build);
        foreach (var upload in plan.Uploads)
            Best(() => blobs.DeleteUpload(upload), "registry upload", upload);
        if (plan.Digests.Count > 0)
        {
            // Best effort too: the delete has committed. Blobs whose rows survive a failure here (a bucket out of reach)
            // are the registry GC's to remove.
            try
            {
                await RegistryGc.DeleteUnlinkedAsync(db, blobs, plan.Digests, CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException
                                          or HttpRequestException or TaskCanceledException or System.Data.Common.DbException)
            {
                LogLeft(log, "registry blobs", plan.Apps.FirstOrDefault(), e.Message);
            }
        }
        // A build of these apps running here was cancelled by its rows going; its buildah still writes in the
        // app's layer cache until its processes are killed (about a second), so the cache goes after it.
        var deadline = clock.GetUtcNow() + BuildsStop;
        while (plan.Apps.Any(local.BuildsApp) && clock.GetUtcNow() < deadline)
            await Task.Delay(TimeSpan.FromMilliseconds(100), clock);
        foreach (var app in plan.Apps)
            await buildah.RemoveStorageAsync(app);
    }

    /// <summary>
    /// The safety net of <see cref="FinishAsync"/> (housekeeping): git repositories, layer caches and build logs in this
    /// host's data folder whose app or build no longer exists — what an Api that died between a delete's commit and its
    /// clean-up left. Returns how many it removed.
    /// </summary>
    public async Task<int> RemoveLeftoversAsync(CancellationToken ct)
    {
        var apps = (await db.Apps.AsNoTracking().Select(a => a.Id).ToListAsync(ct)).ToHashSet();
        var builds = (await db.Builds.AsNoTracking().Select(b => b.Id).ToListAsync(ct)).ToHashSet();
        var removed = 0;
        foreach (var app in Orphans(layout.Git, "*.git", apps))
        {
            Best(() => repositories.Delete(app), "git repository", app);
            removed++;
        }
        foreach (var build in Orphans(layout.BuildLogs, "*.log", builds))
        {
            Best(() => File.Delete(layout.BuildLog(build)), "build log", build);
            removed++;
        }
        foreach (var app in Orphans(layout.Buildah, "*", apps))
        {
            if (local.BuildsApp(app)) continue;
            await buildah.RemoveStorageAsync(app);
            removed++;
        }
        return removed;
    }

    /// <summary>The ids named by the entries of <paramref name="folder"/> (their names before the first '.') that <paramref name="live"/> lacks.</summary>
    private static List<Guid> Orphans(string folder, string pattern, IReadOnlySet<Guid> live) =>
        !Directory.Exists(folder) ? [] : Directory.EnumerateFileSystemEntries(folder, pattern)
            .Select(e => Guid.TryParseExact(Path.GetFileName(e).Split('.')[0], "N", out var id) ? id : Guid.Empty)
            .Where(id => id != Guid.Empty && !live.Contains(id)).ToList();

    private void Best(Action remove, string what, Guid id)
    {
        try
        {
            remove();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogLeft(log, what, id, e.Message);
        }
    }

    [LoggerMessage(EventId = 150, Level = LogLevel.Warning, Message = "Could not remove the {What} of {Id}, whose app was deleted: {Reason}")]
    private static partial void LogLeft(ILogger logger, string what, Guid id, string reason);
}
