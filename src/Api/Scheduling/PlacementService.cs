using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Api.Registry;
using Platform.Data;

namespace Platform.Api.Scheduling;

/// <summary>Serialises placement passes within this replica (PostgreSQL adds an advisory lock across replicas, for the moments a pass runs off the <c>scheduler</c> holder).</summary>
public sealed class SchedulingGate
{
    public SemaphoreSlim Semaphore { get; } = new(1, 1);
}

/// <summary>
/// Where the placement passes request paths ask for run, and how they are shared.
/// <list type="bullet">
/// <item>Passes run on the holder of the <c>scheduler</c> role (<see cref="Operations.ClusterRoles"/>). A replica that does
/// not hold it, while another does, hands its apps to the holder over PostgreSQL's NOTIFY and waits (at most
/// <see cref="HandWait"/>) for the holder's word that a pass placed them, so the request still answers with its
/// instances placed. With no holder known (an election under way), a request over <see cref="MaxHanded"/> apps, or a
/// holder that let a hand-over go unanswered (then for <see cref="HereAfterSilence"/>), the pass runs here, under the
/// same advisory lock the holder takes: placement is never wrong, only less shared.</item>
/// <item>Passes are coalesced: while one pass runs, every app asked for meanwhile (here or handed over by other
/// replicas) goes into the next, which runs as one pass; fifty creates in fifty teams make a few passes, not fifty
/// queued one behind the other. A pass runs in a scope of its own, not bound to any one caller's cancellation (a
/// caller that goes away stops waiting, not the pass).</item>
/// </list>
/// </summary>
public sealed partial class PlacementBatches(IServiceScopeFactory scopes, Operations.ClusterRoles roles, ILogger<PlacementBatches> log)
{
    /// <summary>How long a replica waits for the holder's pass before answering (the background pass places the apps in any case).</summary>
    public static readonly TimeSpan HandWait = TimeSpan.FromSeconds(5);
    /// <summary>The most apps one notification hands over (a NOTIFY payload holds under 8,000 bytes).</summary>
    public const int MaxHanded = 200;
    private const string Place = "place:", Placed = "placed:";

    private readonly Lock _lock = new();
    private HashSet<Guid> _pending = [];
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _running;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, TaskCompletionSource> _handed = new();

    /// <summary>After a hand-over the holder did not answer, passes run here for this long (a holder that died and whose lock PostgreSQL has not yet freed, one that is reconnecting its listener): one slow answer, not one per request.</summary>
    public static readonly TimeSpan HereAfterSilence = TimeSpan.FromSeconds(10);
    private long _hereUntil;   // Environment.TickCount64

    /// <summary>Completes when a pass that began after this call has placed <paramref name="apps"/>, or throws its failure.</summary>
    public Task RunAsync(IReadOnlyCollection<Guid> apps, CancellationToken ct)
    {
        if (apps.Count == 0) return Task.CompletedTask;
        return !roles.Holds(Operations.ClusterRoles.Scheduler) && roles.HeldElsewhere(Operations.ClusterRoles.Scheduler) && apps.Count <= MaxHanded
            && Environment.TickCount64 >= Interlocked.Read(ref _hereUntil)
            ? HandAsync(apps, ct)
            : RunHereAsync(apps, ct);
    }

    private Task RunHereAsync(IReadOnlyCollection<Guid> apps, CancellationToken ct)
    {
        Task done;
        var lead = false;
        lock (_lock)
        {
            _pending.UnionWith(apps);
            done = _next.Task;
            if (!_running) (_running, lead) = (true, true);
        }
        if (lead) _ = Task.Run(DrainAsync, CancellationToken.None);
        return done.WaitAsync(ct);
    }

    private async Task HandAsync(IReadOnlyCollection<Guid> apps, CancellationToken ct)
    {
        var request = Guid.NewGuid();
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _handed[request] = answered;
        try
        {
            await NotifyAsync($"{Place}{request:N}:{string.Join(',', apps.Select(a => a.ToString("N")))}", ct);
            await answered.Task.WaitAsync(HandWait, ct);
            return;
        }
        catch (TimeoutException)
        {
            // The holder did not answer: this pass, and the next ones for a while, run here under the advisory lock.
            Interlocked.Exchange(ref _hereUntil, Environment.TickCount64 + (long)HereAfterSilence.TotalMilliseconds);
            LogSilentHolder(log, HandWait.TotalSeconds);
        }
        finally
        {
            _handed.TryRemove(request, out _);
        }
        await RunHereAsync(apps, ct);
    }

    /// <summary>
    /// A notification from the cluster channel, if it is placement's: the holder runs handed-over apps in its next pass
    /// and answers once that pass is done (or failed: the requester stops waiting either way, and the holder's own
    /// background pass retries); a requester hears the answer. Returns false for other notifications.
    /// </summary>
    public bool Receive(string payload)
    {
        if (payload.StartsWith(Placed, StringComparison.Ordinal))
        {
            if (Guid.TryParseExact(payload.AsSpan(Placed.Length), "N", out var answered) && _handed.TryGetValue(answered, out var waiter))
                waiter.TrySetResult();
            return true;
        }
        if (!payload.StartsWith(Place, StringComparison.Ordinal)) return false;
        if (!roles.Holds(Operations.ClusterRoles.Scheduler)) return true;
        var parts = payload[Place.Length..].Split(':');
        if (parts.Length != 2 || !Guid.TryParseExact(parts[0], "N", out var request)) return true;
        var apps = new List<Guid>();
        foreach (var id in parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))
            if (Guid.TryParseExact(id, "N", out var app)) apps.Add(app);
        if (apps.Count == 0) return true;
        _ = Task.Run(async () =>
        {
            try
            {
                await RunHereAsync(apps, CancellationToken.None);
            }
#pragma warning disable CA1031 // whatever the pass's failure, the requester is answered (and the background pass retries)
            catch (Exception e)
            {
                LogHandedFailed(log, e.Message);
            }
#pragma warning restore CA1031
            try
            {
                await NotifyAsync($"{Placed}{request:N}", CancellationToken.None);
            }
            catch (Exception e) when (e is System.Data.Common.DbException or InvalidOperationException)
            {
                LogHandedFailed(log, e.Message);   // the requester stops waiting after HandWait
            }
        }, CancellationToken.None);
        return true;
    }

    /// <summary>A notification on the cluster channel, outside any transaction (delivered at once).</summary>
    private async Task NotifyAsync(string payload, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        await db.Database.ExecuteSqlAsync($"SELECT pg_notify({ClusterSignals.Channel}, {payload})", ct);
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            HashSet<Guid> apps;
            TaskCompletionSource batch;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _running = false;
                    return;
                }
                (apps, _pending) = (_pending, []);
                (batch, _next) = (_next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            }
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<PlacementService>().ReconcileAsync(apps, CancellationToken.None);
                batch.TrySetResult();
            }
#pragma warning disable CA1031 // every failure goes to the batch's callers, who decide (TryReconcileAsync logs it)
            catch (Exception e)
            {
                batch.TrySetException(e);
            }
#pragma warning restore CA1031
        }
    }

    [LoggerMessage(EventId = 44, Level = LogLevel.Warning, Message = "A placement pass for apps another replica handed over failed ({Reason}); the background pass retries")]
    private static partial void LogHandedFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 45, Level = LogLevel.Warning, Message = "The scheduler role's holder did not answer a placement hand-over within {Seconds} s; passes run on this replica for a while")]
    private static partial void LogSilentHolder(ILogger logger, double seconds);
}

/// <summary>
/// Turns apps into placed instances (the Instance rows each node's agent runs) and keeps them so:
/// an app's image tag is resolved to a digest once per placement so every replica runs the same
/// bytes; missing replicas are placed by <see cref="Scheduler"/> on Ready nodes with room; replicas
/// on NotReady nodes are placed elsewhere (the node, if it comes back, stops them: they are no longer
/// in its desired state); surplus replicas go, non-running first. A change of image, env, port or
/// limits bumps the app's generation: new replicas are placed beside the old ones, which are removed
/// once as many new ones run as the app wants (a surge rollout; old ones keep serving if the new
/// version never starts). Every node whose set changed gets a new revision and its long-poll wakes.
/// </summary>
public sealed partial class PlacementService(
    PlatformDbContext db, SchedulingGate gate, ClusterSignals signals, TimeProvider clock,
    IOptions<PlatformOptions> options, PlacementBatches batches, ILogger<PlacementService> log)
{
    private const long AdvisoryLockKey = 0x706C6174_7363686C;   // "platschl"

    private sealed record AppRow(Guid Id, Guid TeamId, string Team, string Project, string? Image, int Instances, int MemoryMiB, int CpuMillicores, int Generation, string? Message);

    /// <summary>Reconciles the given apps, or every app when <paramref name="apps"/> is null; returns how many instances were added or removed.</summary>
    public async Task<int> ReconcileAsync(IReadOnlyCollection<Guid>? apps, CancellationToken ct)
    {
        await gate.Semaphore.WaitAsync(ct);
        try
        {
            var strategy = db.Database.CreateExecutionStrategy();
            return await strategy.ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                if (db.Database.IsNpgsql())
                    await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({AdvisoryLockKey})", ct);
                var (changes, touched) = await PassAsync(apps, ct);
                if (touched.Count > 0)
                {
                    await db.Nodes.Where(n => touched.Contains(n.Id)).ExecuteUpdateAsync(s => s.SetProperty(n => n.Revision, n => n.Revision + 1), ct);
                    await ClusterSignals.NotifyOthersAsync(db, touched, routes: true, ct);
                }
                await tx.CommitAsync(ct);
                signals.Signal(touched, routes: touched.Count > 0);
                return changes;
            });
        }
        finally
        {
            gate.Semaphore.Release();
        }
    }

    /// <summary>
    /// For request paths (an app just changed, an instance started): a pass now, so the change shows at
    /// once; if it fails (a busy database), the background pass makes it within seconds — the request
    /// that caused it has already succeeded and must not fail for it. Concurrent requests share passes
    /// (<see cref="PlacementBatches"/>): one pass over every app asked for while the previous one ran.
    /// </summary>
    public async Task TryReconcileAsync(IReadOnlyCollection<Guid> apps, CancellationToken ct)
    {
        try
        {
            await batches.RunAsync(apps, ct);
        }
        catch (Exception e) when (e is DbUpdateException or System.Data.Common.DbException or InvalidOperationException)
        {
            LogDeferred(log, e.Message);
        }
    }

    private async Task<(int Changes, HashSet<Guid> Touched)> PassAsync(IReadOnlyCollection<Guid>? appIds, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var readySince = now.AddSeconds(-options.Value.Nodes.NotReadyAfterSeconds);
        var nodes = await db.Nodes.AsNoTracking()
            .Select(n => new { n.Id, n.Name, n.LastHeartbeatAt, n.AllocatableMemoryMiB, n.AllocatableCpuMillicores }).ToListAsync(ct);
        var ready = nodes.Where(n => n.LastHeartbeatAt >= readySince).Select(n => n.Id).ToHashSet();
        var capacities = nodes.Where(n => ready.Contains(n.Id))
            .ToDictionary(n => n.Id, n => new NodeCapacity(n.Id.ToString(), n.AllocatableMemoryMiB, n.AllocatableCpuMillicores));
        var usage = await db.Instances.AsNoTracking().GroupBy(i => i.NodeId)
            .Select(g => new { Node = g.Key, Memory = g.Sum(i => (long)i.MemoryMiB), Cpu = g.Sum(i => (long)i.CpuMillicores) }).ToListAsync(ct);
        foreach (var u in usage)
            if (capacities.TryGetValue(u.Node, out var c)) c.AddUsage(u.Memory, u.Cpu);

        var appQuery = db.Apps.AsNoTracking();
        if (appIds is not null) appQuery = appQuery.Where(a => appIds.Contains(a.Id));
        var apps = await appQuery.Select(a => new AppRow(a.Id, a.Project!.TeamId, a.Project!.Team!.Name, a.Project.Name, a.Image, a.Instances, a.MemoryMiB,
            a.CpuMillicores, a.Generation, a.SchedulingMessage)).ToListAsync(ct);
        var ids = apps.Select(a => a.Id).ToList();
        var instancesQuery = db.Instances.AsQueryable();
        if (appIds is not null) instancesQuery = instancesQuery.Where(i => ids.Contains(i.AppId));
        var instances = (await instancesQuery.ToListAsync(ct)).ToLookup(i => i.AppId);
        // In a full pass, instances whose app is gone are removed too (the FK cascades, but be thorough).
        var resolver = new ImageResolver(db);
        var ordered = nodes.Where(n => ready.Contains(n.Id)).Select(n => capacities[n.Id]).ToList();
        var scheduler = new Scheduler(ordered, Random.Shared);
        var touched = new HashSet<Guid>();
        var changes = 0;
        var budgets = new Dictionary<Guid, SurgeBudget>();   // per team, loaded when an app of it first surges
        // Changed status messages, written at the end with one statement per distinct message: a pass over a hundred
        // new apps all "waiting for a build" writes once, not a hundred times.
        var messages = new Dictionary<string, List<Guid>>();
        var cleared = new List<Guid>();

        foreach (var app in apps)
        {
            var mine = instances[app.Id].ToList();
            foreach (var i in mine)
                if (capacities.TryGetValue(i.NodeId, out var c)) c.CountReplica(app.Id);
            var remove = new List<Instance>();
            remove.AddRange(mine.Where(i => !ready.Contains(i.NodeId)));
            var alive = mine.Except(remove).ToList();

            string? message = null;
            ImageResolver.Resolved? image = null;
            if (app.Image is null) message = "Waiting for a build: the app has no image yet.";
            else if (app.Instances > 0)
            {
                var r = await resolver.ResolveAsync(app.Image, app.Team, ct);
                image = r.Image;
                message = r.Problem;
            }
            var stale = alive.Where(i => i.Generation != app.Generation || (image is not null && i.ImageDigest != image.Digest)).ToList();
            var fresh = alive.Except(stale).ToList();
            var want = app.Image is null ? 0 : app.Instances;
            if (fresh.Count > want)
            {
                // One at a time, recounting, so that the replicas left stay spread across nodes.
                var perNode = fresh.GroupBy(i => i.NodeId).ToDictionary(g => g.Key, g => g.Count());
                while (fresh.Count > want)
                {
                    var victim = fresh.OrderBy(i => i.State == InstanceStates.Ready ? 1 : 0).ThenByDescending(i => perNode[i.NodeId])
                        .ThenByDescending(i => i.CreatedAt).First();
                    perNode[victim.NodeId]--;
                    fresh.Remove(victim);
                    remove.Add(victim);
                }
            }
            var missing = image is null ? 0 : want - fresh.Count;
            // A surge (new instances beside old ones) grows only into the room the team's quota leaves (SurgeBudget).
            SurgeBudget? budget = null;
            var quotaRoom = missing;
            if (missing > 0 && stale.Count > 0)
            {
                if (!budgets.TryGetValue(app.TeamId, out budget)) budgets[app.TeamId] = budget = await SurgeBudget.LoadAsync(db, app.TeamId, ct);
                quotaRoom = budget.Fit(app.Id, missing, app.MemoryMiB, app.CpuMillicores);
            }
            var placedNow = 0;
            if (quotaRoom > 0)
            {
                var (placed, unplaced) = scheduler.Place([new PlacementRequest(app.Id, quotaRoom, app.MemoryMiB, app.CpuMillicores)]);
                foreach (var p in placed)
                {
                    var instance = new Instance
                    {
                        Id = Guid.CreateVersion7(), AppId = app.Id, NodeId = Guid.Parse(p.Node), Generation = app.Generation,
                        ImageRepository = image!.Repository, ImageDigest = image.Digest, MemoryMiB = app.MemoryMiB,
                        CpuMillicores = app.CpuMillicores, CreatedAt = now, UpdatedAt = now,
                    };
                    db.Instances.Add(instance);
                    fresh.Add(instance);
                    touched.Add(instance.NodeId);
                    changes++;
                    placedNow++;
                }
                budget?.Place(app.Id, placed.Count, app.MemoryMiB, app.CpuMillicores);
                if (unplaced.Count > 0)
                {
                    var left = unplaced.Sum(u => u.Count);
                    message = ready.Count == 0
                        ? $"{left} instance(s) wait for a Ready node: no node is Ready."
                        : $"{left} instance(s) wait for a Ready node with {app.MemoryMiB} MiB and {app.CpuMillicores} millicores free.";
                }
            }
            // The surge completes: once the new generation is Ready in full (its readiness probes pass), the old one goes.
            // Without room for a full surge (the team's quota or the nodes) it goes as far as the room allows: an old
            // instance leaves for each new one Ready, so Ready new + old never drops below what the app wants. With no
            // room for even one new instance, one old instance stops first, and the next pass places a new one in its
            // room — one at a time, the app one instance short while each new one starts (never more than one short).
            var readyFresh = fresh.Count(i => i.State == InstanceStates.Ready);
            if (stale.Count > 0 && readyFresh >= want)
                remove.AddRange(stale);
            else if (stale.Count > 0 && fresh.Count < want)
            {
                var oldFirst = stale.OrderBy(i => i.State == InstanceStates.Ready ? 1 : 0).ThenBy(i => i.CreatedAt).ToList();
                var surplus = stale.Count - Math.Max(0, want - readyFresh);
                var beyond = Math.Max(0, alive.Count + quotaRoom - want);   // how many instances beyond what the app wants the quota lets it hold
                var why = quotaRoom < missing
                    ? $"the quota of team {app.Team} leaves room for {(beyond == 0 ? "no" : beyond)} new instance(s) beside the old ones"
                    : $"no node has room for all {want} new instance(s) beside the old ones";
                if (surplus <= 0 && placedNow == 0 && image is not null && stale.Count + fresh.Count >= want && fresh.All(i => i.State == InstanceStates.Ready))
                {
                    surplus = 1;
                    why += "; an old instance stops before each new one starts";
                }
                if (surplus > 0) remove.AddRange(oldFirst.Take(surplus));
                message = $"rolling out one at a time: {why}" + (message is null ? "" : $" ({message})");
            }
            foreach (var i in remove.Distinct())
            {
                db.Instances.Remove(i);
                touched.Add(i.NodeId);
                changes++;
            }
            if (message == app.Message) continue;
            if (message is null) cleared.Add(app.Id);
            else if (messages.TryGetValue(message, out var same)) same.Add(app.Id);
            else messages[message] = [app.Id];
        }
        foreach (var (text, withText) in messages)
            await db.Apps.Where(a => withText.Contains(a.Id)).ExecuteUpdateAsync(s => s.SetProperty(a => a.SchedulingMessage, text), ct);
        if (cleared.Count > 0)
            await db.Apps.Where(a => cleared.Contains(a.Id)).ExecuteUpdateAsync(s => s.SetProperty(a => a.SchedulingMessage, (string?)null), ct);
        await db.SaveChangesAsync(ct);
        if (changes > 0) LogPass(log, apps.Count, changes);
        return (changes, touched);
    }

    /// <summary>Bumps the revision of nodes whose instances went with deleted apps (inside the caller's transaction; Apps/AppRemoval).</summary>
    public async Task TouchAsync(IReadOnlyCollection<Guid> nodes, CancellationToken ct)
    {
        if (nodes.Count == 0) return;
        await db.Nodes.Where(n => nodes.Contains(n.Id)).ExecuteUpdateAsync(s => s.SetProperty(n => n.Revision, n => n.Revision + 1), ct);
        await ClusterSignals.NotifyOthersAsync(db, nodes, routes: true, ct);
    }

    [LoggerMessage(EventId = 43, Level = LogLevel.Warning, Message = "A placement pass was deferred to the background pass: {Reason}")]
    private static partial void LogDeferred(ILogger logger, string reason);

    [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "Placement pass over {Apps} app(s): {Changes} instance(s) added or removed")]
    private static partial void LogPass(ILogger logger, int apps, int changes);
}

/// <summary>The scheduler's pass every few seconds: nodes that went NotReady, capacity that freed up, rollouts that finished. One replica runs it (the scheduler role).</summary>
public sealed partial class SchedulingLoop(IServiceScopeFactory scopes, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<SchedulingLoop> log)
    : ScopedPeriodicPass(scopes, clock)
{
    protected override TimeSpan Period => TimeSpan.FromSeconds(Math.Max(1, options.Value.Nodes.ReconcileSeconds));

    protected override string? Role => Operations.ClusterRoles.Scheduler;

    protected override Task PassAsync(IServiceProvider services, CancellationToken ct) =>
        services.GetRequiredService<PlacementService>().ReconcileAsync(null, ct);

    protected override void Failed(string reason) => LogFailed(log, reason);

    [LoggerMessage(EventId = 42, Level = LogLevel.Warning, Message = "A placement pass failed ({Reason}); the next one retries")]
    private static partial void LogFailed(ILogger logger, string reason);
}
