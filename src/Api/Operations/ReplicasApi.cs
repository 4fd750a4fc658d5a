using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Operations;

/// <summary>The Api replicas and the roles each holds, for platform admins (who runs the scheduler now, who builds).</summary>
public static class ReplicasApi
{
    public static RouteGroupBuilder MapReplicasApi(this RouteGroupBuilder api)
    {
        api.MapGet("/replicas", ListAsync).WithName("replicas.list");
        return api;
    }

    private static async Task<Results<Ok<Page<ReplicaResponse>>, ProblemHttpResult>> ListAsync(
        AccessService access, PlatformDbContext db, ClusterRoles roles, TimeProvider clock, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins list the Api's replicas.");
        var now = clock.GetUtcNow().UtcDateTime;
        var rows = await db.ApiReplicas.AsNoTracking().OrderBy(r => r.StartedAt).ToListAsync(ct);
        return TypedResults.Ok(new Page<ReplicaResponse>(rows.Select(r =>
        {
            var gone = now - r.SeenAt > ClusterRoles.GoneAfter;
            return new ReplicaResponse(r.Id.ToString("N"), r.Name, gone ? "Gone" : "Up",
                gone ? [] : r.Roles.Split(',', StringSplitOptions.RemoveEmptyEntries), r.BuildWorkers, r.StartedAt, r.SeenAt, r.Id == roles.Replica);
        }).ToList(), null));
    }
}
