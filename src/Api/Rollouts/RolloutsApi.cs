using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Rollouts;

/// <summary>An app's current rollout and its events (viewers and up), and cancelling a rollout in progress (developers): the same rollback as a missed deadline.</summary>
public static class RolloutsApi
{
    public static RouteGroupBuilder MapRolloutsApi(this RouteGroupBuilder api)
    {
        const string app = "/teams/{team}/projects/{project}/apps/{app}";
        api.MapGet(app + "/rollout", GetAsync).WithName("rollouts.get");
        api.MapPost(app + "/rollout/cancel", CancelAsync).WithName("rollouts.cancel");
        api.MapGet(app + "/events", EventsAsync).WithName("apps.events");
        return api;
    }

    private static async Task<Results<Ok<RolloutResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, RolloutService rollouts, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var r = await db.Rollouts.AsNoTracking().Where(x => x.AppId == a!.Id).OrderByDescending(x => x.Generation).FirstOrDefaultAsync(ct);
        if (r is null) return Problems.NotFound($"A rollout of app '{app}'");
        return TypedResults.Ok(await ToResponseAsync(r, a!, db, ct));
    }

    public static async Task<RolloutResponse> ToResponseAsync(Rollout r, App a, PlatformDbContext db, CancellationToken ct)
    {
        var instances = await db.Instances.AsNoTracking().Where(i => i.AppId == a.Id).Select(i => new { i.Generation, i.State }).ToListAsync(ct);
        var mine = instances.Where(i => i.Generation == r.Generation).ToList();
        var old = instances.Where(i => i.Generation != r.Generation).ToList();
        return new RolloutResponse(r.Generation, r.State, r.Message, r.ReleaseVersion, r.RollbackOf, r.StartedAt, r.DeadlineAt, r.FinishedAt,
            new RolloutSide(mine.Count(i => i.State == InstanceStates.Ready), a.Image is null ? 0 : a.Instances),
            new RolloutSide(old.Count(i => i.State == InstanceStates.Ready), old.Count),
            r.State == RolloutStates.Progressing && a.SchedulingMessage?.StartsWith("rolling out", StringComparison.Ordinal) == true ? a.SchedulingMessage : null);
    }

    private static async Task<Results<Ok<RolloutResponse>, ProblemHttpResult>> CancelAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, RolloutService rollouts, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppWrite, ct);
        if (problem is not null) return problem;
        var r = await db.Rollouts.AsNoTracking().Where(x => x.AppId == a!.Id).OrderByDescending(x => x.Generation).FirstOrDefaultAsync(ct);
        if (r is not { State: RolloutStates.Progressing })
            return Problems.Conflict("rollout", r is null ? $"App '{app}' has no rollout." : $"Generation {r.Generation}'s rollout is {r.State}, not in progress.");
        var (ready, _, reason) = await rollouts.CountAsync(r, ct);
        var ended = await rollouts.RollBackAsync(r.Id, RolloutStates.Cancelled, $"{ready} of {a!.Instances} new instance(s) were ready" + (reason is null ? "" : $" ({reason})"),
            access.Caller.Email ?? access.Caller.UserId, ct);
        if (ended is null) return Problems.Conflict("rollout", $"Generation {r.Generation}'s rollout ended meanwhile.");
        db.ChangeTracker.Clear();
        var fresh = await db.Apps.AsNoTracking().FirstAsync(x => x.Id == a.Id, ct);
        return TypedResults.Ok(await ToResponseAsync(ended, fresh, db, ct));
    }

    private static async Task<Results<Ok<Page<AppEventResponse>>, ProblemHttpResult>> EventsAsync(
        string team, string project, string app, int? limit, long? before, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var query = db.AppEvents.AsNoTracking().Where(e => e.AppId == a!.Id);
        if (before is not null) query = query.Where(e => e.Id < before);
        var take = Paging.Take(limit);
        var rows = await query.OrderByDescending(e => e.Id).Take(take + 1).ToListAsync(ct);
        var next = rows.Count > take ? rows[take - 1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
        return TypedResults.Ok(new Page<AppEventResponse>(rows.Take(take)
            .Select(e => new AppEventResponse(e.Id, e.At, e.Kind, e.Message, e.Generation, e.InstanceId?.ToString("N"))).ToList(), next));
    }
}
