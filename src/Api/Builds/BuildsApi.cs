using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Apps;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>An app's builds, each build's state and its log (viewers and up).</summary>
public static class BuildsApi
{
    public static RouteGroupBuilder MapBuildsApi(this RouteGroupBuilder api)
    {
        const string builds = "/teams/{team}/projects/{project}/apps/{app}/builds";
        api.MapGet(builds, ListAsync).WithName("builds.list");
        api.MapGet(builds + "/{number:int}", GetAsync).WithName("builds.get");
        api.MapGet(builds + "/{number:int}/log", LogAsync).WithName("builds.log");
        return api;
    }

    private static BuildResponse ToResponse(Build b) =>
        new(b.Number, b.Commit, b.State, b.Reason, b.ImageDigest, b.CreatedAt, b.StartedAt, b.FinishedAt);

    private static async Task<(App? App, ProblemHttpResult? Problem)> AppAsync(string team, string project, string app, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var s = await AppsApi.ScopeAsync(team, project, Permission.AppRead, access, ct);
        if (s.Problem is { } p) return (null, p);
        var a = await AppsApi.FindAsync(db, s.Value!.Project, app, ct);
        return a is null ? (null, Problems.NotFound($"App '{app}'")) : (a, null);
    }

    private static async Task<Results<Ok<Page<BuildResponse>>, ProblemHttpResult>> ListAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, problem) = await AppAsync(team, project, app, access, db, ct);
        if (problem is not null) return problem;
        var rows = await db.Builds.AsNoTracking().Where(b => b.AppId == a!.Id).OrderByDescending(b => b.Number).Take(100).ToListAsync(ct);
        return TypedResults.Ok(new Page<BuildResponse>(rows.Select(ToResponse).ToList(), null));
    }

    private static async Task<Results<Ok<BuildResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, string app, int number, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, problem) = await AppAsync(team, project, app, access, db, ct);
        if (problem is not null) return problem;
        var b = await db.Builds.AsNoTracking().FirstOrDefaultAsync(x => x.AppId == a!.Id && x.Number == number, ct);
        return b is null ? Problems.NotFound($"Build #{number}") : TypedResults.Ok(ToResponse(b));
    }

    private static async Task<IResult> LogAsync(
        string team, string project, string app, int number, AccessService access, PlatformDbContext db, IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var (a, problem) = await AppAsync(team, project, app, access, db, ct);
        if (problem is not null) return problem;
        var b = await db.Builds.AsNoTracking().FirstOrDefaultAsync(x => x.AppId == a!.Id && x.Number == number, ct);
        if (b is null) return Problems.NotFound($"Build #{number}");
        var file = BuildJob.LogPath(options.Value, b.Id);
        return File.Exists(file)
            ? Results.Text(await File.ReadAllTextAsync(file, ct), "text/plain; charset=utf-8")
            : Results.Text("", "text/plain; charset=utf-8");
    }
}
