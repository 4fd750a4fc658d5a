using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Deployments;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Rollouts;

public static class RolloutStates
{
    public const string Progressing = "Progressing";
    public const string Succeeded = "Succeeded";
    public const string RolledBack = "RolledBack";
    public const string Cancelled = "Cancelled";
    /// <summary>Its deadline passed with nothing good to go back to (the app's first rollout): its instances keep trying.</summary>
    public const string Failed = "Failed";
}

/// <summary>What an app ran when a rollout of it succeeded: the target of an automatic rollback (image and env, limits, port).</summary>
public sealed record GoodSpec(string? Image, int MemoryMiB, int CpuMillicores, int Port, Dictionary<string, string> Env)
{
    public static string Of(App a) => JsonSerializer.Serialize(new GoodSpec(a.Image, a.MemoryMiB, a.CpuMillicores, a.Port, new(a.Env)));

    public static GoodSpec? Parse(string? json) => json is null ? null : JsonSerializer.Deserialize<GoodSpec>(json);
}

/// <summary>An app's events, for people; written in the caller's unit of work.</summary>
public static class AppEvents
{
    public const string RolloutStarted = "RolloutStarted";
    public const string RolloutSucceeded = "RolloutSucceeded";
    public const string RolledBack = "RolledBack";
    public const string RolloutCancelled = "RolloutCancelled";
    public const string RolloutFailed = "RolloutFailed";
    public const string InstanceReady = "InstanceReady";
    public const string ProbeFailed = "ProbeFailed";
    public const string Unhealthy = "Unhealthy";
    public const string OomKilled = "OOMKilled";
    public const string CrashLoop = "CrashLoop";

    public static void Add(PlatformDbContext db, Guid app, string kind, string message, DateTime at, int? generation = null, Guid? instance = null) =>
        db.AppEvents.Add(New(app, kind, message, at, generation, instance));

    /// <summary>An event of an app not saved yet (its id comes at save): linked by the entity.</summary>
    public static void Add(PlatformDbContext db, App app, string kind, string message, DateTime at, int? generation = null)
    {
        var e = New(app.Id, kind, message, at, generation, null);
        e.App = app;
        db.AppEvents.Add(e);
    }

    private static AppEvent New(Guid app, string kind, string message, DateTime at, int? generation, Guid? instance) => new()
    {
        AppId = app, Kind = kind, Message = message.Length > 1024 ? message[..1024] : message, At = at, Generation = generation, InstanceId = instance,
    };

    /// <summary>The events an instance's new report means: ready, a probe failing it, a liveness restart, an OOM kill, a crash loop.</summary>
    public static void OfReport(PlatformDbContext db, Instance row, InstanceReport r, DateTime at)
    {
        var who = $"instance {row.Id.ToString("N")[^8..]} (generation {row.Generation})";
        if (r.State == InstanceStates.Ready && row.State != InstanceStates.Ready)
            Add(db, row.AppId, InstanceReady, $"{who} is ready", at, row.Generation, row.Id);
        else if (r.State == InstanceStates.NotReady && row.State != InstanceStates.NotReady)
            Add(db, row.AppId, ProbeFailed, $"{who} is not ready: {r.Message}", at, row.Generation, row.Id);
        if (r.Restarts > row.Restarts && r.Reason == "Unhealthy")
            Add(db, row.AppId, Unhealthy, $"{who} was restarted: {r.Message}", at, row.Generation, row.Id);
        else if (r.Restarts > row.Restarts && r.Reason == "OOMKilled")
            Add(db, row.AppId, OomKilled, $"{who} ran out of memory ({row.MemoryMiB} MiB) and was restarted", at, row.Generation, row.Id);
        if (r.State == InstanceStates.CrashLoop && row.State != InstanceStates.CrashLoop)
            Add(db, row.AppId, CrashLoop, $"{who} keeps exiting ({r.Reason}, exit {r.ExitCode}); restarts continue at the longest back-off", at, row.Generation, row.Id);
    }
}

/// <summary>
/// Rollouts as the database keeps them (so they survive an Api restart, and any replica carries them on): started
/// by <see cref="DeploymentService"/> whenever an app's generation moves, watched by <see cref="RolloutMonitor"/>, which
/// marks one Succeeded once its generation is Ready in full and the previous one gone, and rolls one back by itself
/// when its progress deadline passes — to the last good spec (image, env, limits, port), marking the failed release
/// with the probes' words. Cancelling does the same on request.
/// </summary>
public sealed partial class RolloutService(PlatformDbContext db, DeploymentService deployments, TimeProvider clock, ILogger<RolloutService> log)
{
    /// <summary>Starts generation <c>app.Generation</c>'s rollout (in the caller's transaction); a rollout still in progress is superseded.</summary>
    public static async Task StartAsync(PlatformDbContext db, App app, int? release, int? rollbackOf, string what, DateTime now, CancellationToken ct)
    {
        if (app.Id != Guid.Empty)
            await db.Rollouts.Where(r => r.AppId == app.Id && r.State == RolloutStates.Progressing && r.Generation != app.Generation)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.State, RolloutStates.Cancelled)
                    .SetProperty(r => r.Message, $"superseded by generation {app.Generation}").SetProperty(r => r.FinishedAt, now), ct);
        db.Rollouts.Add(new Rollout
        {
            Id = Guid.CreateVersion7(), App = app, AppId = app.Id, Generation = app.Generation, ReleaseVersion = release, RollbackOf = rollbackOf,
            State = RolloutStates.Progressing, StartedAt = now, DeadlineAt = now.AddSeconds(app.ProgressDeadlineSeconds), Message = what,
        });
        AppEvents.Add(db, app, AppEvents.RolloutStarted, $"generation {app.Generation} rolling out: {what} (deadline {app.ProgressDeadlineSeconds} s)", now, app.Generation);
    }

    /// <summary>One look at every rollout in progress: finished ones are marked, overdue ones rolled back. Returns how many changed.</summary>
    public async Task<int> CheckAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var progressing = await db.Rollouts.AsNoTracking().Where(r => r.State == RolloutStates.Progressing).ToListAsync(ct);
        var changed = 0;
        foreach (var r in progressing)
        {
            var app = await db.Apps.AsNoTracking().Where(a => a.Id == r.AppId).Select(a => new { a.Generation, a.Instances }).FirstOrDefaultAsync(ct);
            if (app is null) continue;
            var (ready, old, reason) = await CountAsync(r, ct);
            if (app.Generation == r.Generation && ready >= app.Instances && old == 0)
            {
                if (await SucceedAsync(r, ready, now, ct)) changed++;
            }
            else if (now >= r.DeadlineAt)
            {
                var why = $"{app.Instances - Math.Min(ready, app.Instances)} of {app.Instances} new instance(s) not ready within {(r.DeadlineAt - r.StartedAt).TotalSeconds:0} s" + (reason is null ? "" : ": " + reason);
                if (await RollBackAsync(r.Id, RolloutStates.RolledBack, why, null, ct) is not null) changed++;
            }
        }
        return changed;
    }

    /// <summary>The rollout's Ready instances of its generation, the previous generations' instances left, and a new instance's words for why it is not ready.</summary>
    public async Task<(int Ready, int Old, string? Reason)> CountAsync(Rollout r, CancellationToken ct)
    {
        var instances = await db.Instances.AsNoTracking().Where(i => i.AppId == r.AppId)
            .Select(i => new { i.Generation, i.State, i.Message, i.Reason, i.ExitCode }).ToListAsync(ct);
        var mine = instances.Where(i => i.Generation == r.Generation).ToList();
        var stuck = mine.FirstOrDefault(i => i.State != InstanceStates.Ready);
        var reason = stuck is null ? null
            : stuck.Message ?? (stuck.Reason is null ? $"{stuck.State}" : $"{stuck.State} ({stuck.Reason}{(stuck.ExitCode is { } c ? $", exit {c}" : "")})");
        return (mine.Count(i => i.State == InstanceStates.Ready), instances.Count(i => i.Generation != r.Generation), reason);
    }

    private async Task<bool> SucceedAsync(Rollout r, int ready, DateTime now, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var took = (now - r.StartedAt).TotalSeconds;
        var won = await db.Rollouts.Where(x => x.Id == r.Id && x.State == RolloutStates.Progressing)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.State, RolloutStates.Succeeded).SetProperty(x => x.FinishedAt, now)
                .SetProperty(x => x.Message, $"{ready} instance(s) ready in {took:0.0} s"), ct);
        if (won == 0) return false;
        var app = await db.Apps.FirstAsync(a => a.Id == r.AppId, ct);
        if (app.Generation == r.Generation) app.LastGoodSpec = GoodSpec.Of(app);
        AppEvents.Add(db, r.AppId, AppEvents.RolloutSucceeded, $"generation {r.Generation} is ready: {ready} instance(s) in {took:0.0} s", now, r.Generation);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        LogSucceeded(log, r.AppId, r.Generation, took);
        return true;
    }

    /// <summary>
    /// Ends rollout <paramref name="rolloutId"/> as <paramref name="state"/> (if it still progresses) and puts the app back on its last
    /// good spec, which rolls out as a new generation; with nothing good to go back to, or when the rollout was itself a rollback,
    /// it is Failed (or Cancelled) and the app stays.
    /// Returns the rollout as it ended, or null when it no longer progressed.
    /// </summary>
    public async Task<Rollout?> RollBackAsync(Guid rolloutId, string state, string reason, string? actor, CancellationToken ct)
    {
        var teamId = await db.Rollouts.AsNoTracking().Where(r => r.Id == rolloutId).Select(r => r.App!.Project!.TeamId).FirstOrDefaultAsync(ct);
        if (teamId == Guid.Empty) return null;
        await using var admission = await deployments.BeginAsync(teamId, ct);   // serialised with every other change of the team's apps
        var rollout = await db.Rollouts.FirstOrDefaultAsync(r => r.Id == rolloutId && r.State == RolloutStates.Progressing, ct);
        if (rollout is null) return null;
        var now = clock.GetUtcNow().UtcDateTime;
        var app = await db.Apps.Include(a => a.Project!).ThenInclude(p => p.Team).FirstAsync(a => a.Id == rollout.AppId, ct);
        var good = GoodSpec.Parse(app.LastGoodSpec);
        var who = actor is null ? "" : $" by {actor}";
        rollout.FinishedAt = now;
        if (rollout.ReleaseVersion is { } version)
            await db.Releases.Where(r => r.AppId == app.Id && r.Version == version)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.FailureReason, Trim((state == RolloutStates.Cancelled ? "cancelled" + who + ": " : "") + reason)), ct);
        // A rollback that itself does not get ready is not rolled back again (that would loop, one generation per deadline).
        if (good is null || app.Generation != rollout.Generation || rollout.RollbackOf is not null)
        {
            var nowhere = rollout.RollbackOf is { } undone && good is not null
                ? $"it rolled back generation {undone}, and is not rolled back in turn; its instances keep trying"
                : "nothing earlier ran well to roll back to";
            rollout.State = state == RolloutStates.Cancelled ? RolloutStates.Cancelled : RolloutStates.Failed;
            rollout.Message = Trim($"{(state == RolloutStates.Cancelled ? "cancelled" + who : "failed")}: {reason}; {nowhere}");
            AppEvents.Add(db, app.Id, state == RolloutStates.Cancelled ? AppEvents.RolloutCancelled : AppEvents.RolloutFailed,
                $"generation {rollout.Generation} {rollout.Message}", now, rollout.Generation);
            Audit(app, rollout.State, rollout.Message, actor, now);
            await deployments.CommitAsync(admission, app.Id, ct);
            return rollout;
        }
        var before = RunSpec.Of(app);
        var deploy = good.Image is not null && good.Image != app.Image
            ? new Deploy(good.Image, Trim($"Rollback of generation {rollout.Generation}: {reason}", 256)) : null;
        (app.Env, app.MemoryMiB, app.CpuMillicores, app.Port) = (new(good.Env), good.MemoryMiB, good.CpuMillicores, good.Port);
        rollout.State = state;
        var release = await deployments.ApplyAsync(app, app.Project!.Team!.Name, before, deploy, null, ct, rollbackOf: rollout.Generation);
        rollout.Message = Trim($"{(state == RolloutStates.Cancelled ? "cancelled" + who + ", rolled" : "rolled")} back to generation {app.Generation}"
            + (release is null ? "" : $" (release v{release.Version}, {good.Image})") + $": {reason}");
        AppEvents.Add(db, app.Id, state == RolloutStates.Cancelled ? AppEvents.RolloutCancelled : AppEvents.RolledBack,
            $"generation {rollout.Generation} {rollout.Message}", now, rollout.Generation);
        Audit(app, state, rollout.Message, actor, now);
        await deployments.CommitAsync(admission, app.Id, ct);
        LogRolledBack(log, app.Id, rollout.Generation, reason);
        return rollout;
    }

    private void Audit(App app, string state, string message, string? actor, DateTime now) =>
        db.AuditEvents.Add(new AuditEvent
        {
            At = now, ActorEmail = actor ?? "platform", Action = state == RolloutStates.Cancelled ? "rollouts.cancel" : "rollouts.rollback",
            TeamId = app.Project!.TeamId, Target = $"app {app.Project.Team!.Name}/{app.Project.Name}/{app.Name}", Outcome = Trim(message, 256), Status = 200,
        });

    private static string Trim(string s, int max = 1024) => s.Length > max ? s[..(max - 1)] + "…" : s;

    [LoggerMessage(EventId = 140, Level = LogLevel.Information, Message = "Rollout of app {App} generation {Generation} succeeded in {Seconds:0.0} s")]
    private static partial void LogSucceeded(ILogger logger, Guid app, int generation, double seconds);

    [LoggerMessage(EventId = 141, Level = LogLevel.Warning, Message = "Rollout of app {App} generation {Generation} rolled back: {Reason}")]
    private static partial void LogRolledBack(ILogger logger, Guid app, int generation, string reason);
}

/// <summary>Looks at the rollouts in progress every second, on the replica holding the rollouts role (each step is still a conditional update).</summary>
public sealed partial class RolloutMonitor(IServiceScopeFactory scopes, TimeProvider clock, ILogger<RolloutMonitor> log) : ScopedPeriodicPass(scopes, clock)
{
    protected override TimeSpan Period => TimeSpan.FromSeconds(1);

    protected override string? Role => Operations.ClusterRoles.Rollouts;

    protected override Task PassAsync(IServiceProvider services, CancellationToken ct) => services.GetRequiredService<RolloutService>().CheckAsync(ct);

    protected override void Failed(string reason) => LogFailed(log, reason);

    [LoggerMessage(EventId = 142, Level = LogLevel.Warning, Message = "Looking at rollouts failed ({Reason}); the next look retries")]
    private static partial void LogFailed(ILogger logger, string reason);
}
