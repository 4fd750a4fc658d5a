using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Audit;

public static class AuditApi
{
    public static RouteGroupBuilder MapAuditApi(this RouteGroupBuilder api)
    {
        api.MapGet("/teams/{team}/audit", ListTeamAsync).WithName("audit.team");
        api.MapGet("/audit", ListAllAsync).WithName("audit.all");
        return api;
    }

    private static async Task<Results<Ok<Page<AuditEventResponse>>, ProblemHttpResult>> ListTeamAsync(
        string team, int? limit, long? before, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var t = await access.TeamAsync(team, Permission.TeamAuditRead, ct);
        if (t.Problem is { } p) return p;
        return TypedResults.Ok(await PageAsync(db.AuditEvents.Where(e => e.TeamId == t.Value!.Team.Id), db, limit, before, ct));
    }

    private static async Task<Results<Ok<Page<AuditEventResponse>>, ProblemHttpResult>> ListAllAsync(
        int? limit, long? before, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        if (!access.Caller.IsPlatformAdmin)
            return Problems.Forbidden("Only platform admins read the whole audit log.");
        return TypedResults.Ok(await PageAsync(db.AuditEvents, db, limit, before, ct));
    }

    /// <summary>Newest first, keyset-paged by id (<c>before</c> = the last id of the previous page).</summary>
    private static async Task<Page<AuditEventResponse>> PageAsync(
        IQueryable<AuditEvent> query, PlatformDbContext db, int? limit, long? before, CancellationToken ct)
    {
        var take = Paging.Take(limit);
        if (before is { } b) query = query.Where(e => e.Id < b);
        var rows = await query.OrderByDescending(e => e.Id).Take(take + 1)
            .Select(e => new
            {
                e.Id, e.At, e.ActorEmail, e.Action, e.Target, e.RequestPath, e.Outcome, e.Status,
                Team = db.Teams.Where(t => t.Id == e.TeamId).Select(t => t.Name).FirstOrDefault(),
            })
            .ToListAsync(ct);
        var items = rows.Take(take)
            .Select(e => new AuditEventResponse(e.Id, e.At, e.ActorEmail, e.Action, e.Team, e.Target, e.Outcome, e.Status, e.RequestPath))
            .ToList();
        return new Page<AuditEventResponse>(items, rows.Count > take ? items[^1].Id.ToString() : null);
    }
}
