using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Apps;
using Platform.Api.Infrastructure;
using Platform.Api.Deployments;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Releases;

/// <summary>An app's releases (viewers and up) and rollback to any of them (developers): one action, a new release that runs the old image.</summary>
public static class ReleasesApi
{
    public static RouteGroupBuilder MapReleasesApi(this RouteGroupBuilder api)
    {
        const string releases = "/teams/{team}/projects/{project}/apps/{app}/releases";
        api.MapGet(releases, ListAsync).WithName("releases.list");
        api.MapPost(releases + "/{version:int}/rollback", RollbackAsync).WithName("releases.rollback");
        return api;
    }

    private static async Task<Results<Ok<Page<ReleaseResponse>>, ProblemHttpResult>> ListAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var rows = await db.Releases.AsNoTracking().Where(r => r.AppId == a!.Id).OrderByDescending(r => r.Version).Take(100)
            .Select(r => new { r, By = db.Users.Where(u => u.Id == r.CreatedBy).Select(u => u.Email).FirstOrDefault() }).ToListAsync(ct);
        var current = rows.Count == 0 ? 0 : rows[0].r.Version;
        return TypedResults.Ok(new Page<ReleaseResponse>(rows.Select(x => ToResponse(x.r, x.By, current)).ToList(), null));
    }

    private static ReleaseResponse ToResponse(Release r, string? by, int current) =>
        new(r.Version, r.Image, r.Commit, r.BuildNumber, r.Description, by, r.CreatedAt, r.Version == current, r.FailureReason);

    private static async Task<Results<Created<ReleaseResponse>, ProblemHttpResult>> RollbackAsync(
        string team, string project, string app, int version, AccessService access, PlatformDbContext db,
        DeploymentService deployments, CancellationToken ct)
    {
        var s = await access.ProjectScopeAsync(team, project, Permission.AppWrite, ct);
        if (s.Problem is { } p) return p;
        await using var tx = await deployments.BeginAsync(s.Value!.Access.Team.Id, ct);   // serialised with other changes of the team's apps
        var a = await access.FindAppAsync(s.Value.Project, app, ct);
        if (a is null) return Problems.NotFound($"App '{app}'");
        var target = await db.Releases.AsNoTracking().FirstOrDefaultAsync(r => r.AppId == a.Id && r.Version == version, ct);
        if (target is null) return Problems.NotFound($"Release v{version}");
        // The release may name an image someone else deployed: the person rolling back must be able to pull it.
        if (await deployments.MayRunAsync(access.Caller, target.Image, ct) is { } imageDenied) return imageDenied;
        var release = (await deployments.ApplyAsync(a, team, RunSpec.Of(a),
            new Deploy(target.Image, $"Rollback to v{version}", target.Commit, target.BuildNumber), access.Caller.UserId, ct))!;
        await deployments.CommitAsync(tx, a.Id, ct);
        return TypedResults.Created($"/api/v1/teams/{team}/projects/{project}/apps/{app}/releases", ToResponse(release, access.Caller.Email, release.Version));
    }
}
