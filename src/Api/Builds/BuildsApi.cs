using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Apps;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>An app's builds: list, start (developers), cancel (developers), each build's state and its log — kept, or followed live as Server-Sent Events.</summary>
public static class BuildsApi
{
    public static RouteGroupBuilder MapBuildsApi(this RouteGroupBuilder api)
    {
        const string builds = "/teams/{team}/projects/{project}/apps/{app}/builds";
        api.MapGet(builds, ListAsync).WithName("builds.list");
        api.MapPost(builds, CreateAsync).WithName("builds.create");
        api.MapGet(builds + "/{number:int}", GetAsync).WithName("builds.get");
        api.MapPost(builds + "/{number:int}/cancel", CancelAsync).WithName("builds.cancel");
        api.MapGet(builds + "/{number:int}/log", LogAsync).WithName("builds.log");
        return api;
    }

    private static BuildResponse ToResponse(Build b, string? by) =>
        new(b.Number, b.Commit, b.State, b.Reason, b.ImageDigest, b.CreatedAt, b.StartedAt, b.FinishedAt, b.Trigger, by, b.CancelRequested);

    private static async Task<Results<Ok<Page<BuildResponse>>, ProblemHttpResult>> ListAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var rows = await db.Builds.AsNoTracking().Where(b => b.AppId == a!.Id).OrderByDescending(b => b.Number).Take(100)
            .Select(b => new { b, By = db.Users.Where(u => u.Id == b.CreatedBy).Select(u => u.Email).FirstOrDefault() }).ToListAsync(ct);
        return TypedResults.Ok(new Page<BuildResponse>(rows.Select(r => ToResponse(r.b, r.By)).ToList(), null));
    }

    private static async Task<Results<Ok<BuildResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, string app, int number, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var b = await db.Builds.AsNoTracking().FirstOrDefaultAsync(x => x.AppId == a!.Id && x.Number == number, ct);
        if (b is null) return Problems.NotFound($"Build #{number}");
        return TypedResults.Ok(ToResponse(b, await db.Users.Where(u => u.Id == b.CreatedBy).Select(u => u.Email).FirstOrDefaultAsync(ct)));
    }

    /// <summary>Builds a commit again (or the head of the app's branch): after a failure outside the code, or to pick up a moved base image.</summary>
    private static async Task<Results<Created<BuildResponse>, ProblemHttpResult>> CreateAsync(
        string team, string project, string app, CreateBuildRequest? body, AccessService access, PlatformDbContext db, BuildQueue queue,
        Git.GitRepositories repositories, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppWrite, ct);
        if (problem is not null) return problem;
        if (!a!.FromSource) return Problems.Validation("app", "this app runs an image; only apps built from source have builds.");
        var commit = body?.Commit;
        if (commit is not null && !BuildQueue.IsCommitId(commit))
            return Problems.Validation("commit", "must be a full commit id (40 or 64 lowercase hexadecimal digits).");
        if (a.SourceUrl is null)
        {
            var found = await repositories.ResolveAsync(a.Id, commit ?? "refs/heads/" + a.Branch, ct);
            if (found is null)
                return Problems.Validation("commit", commit is null
                    ? $"the repository has no branch '{a.Branch}' yet: push to it first."
                    : $"commit {commit} is not in the app's repository.");
            commit = found;
        }
        else if (commit is null)
        {
            var last = await db.Builds.AsNoTracking().Where(b => b.AppId == a.Id).OrderByDescending(b => b.Number).Select(b => b.Commit).FirstOrDefaultAsync(ct);
            if (last is null) return Problems.Validation("commit", "name the commit to build: the platform learns of commits from the webhook.");
            commit = last;
        }
        var build = await queue.QueueAsync(a, commit, "api", a.SourceUrl, access.Caller.UserId, ct);
        return TypedResults.Created($"/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{build.Number}", ToResponse(build, access.Caller.Email));
    }

    /// <summary>A queued build is cancelled at once; a running one within a second or two (its processes are killed).</summary>
    private static async Task<Results<Accepted<BuildResponse>, ProblemHttpResult>> CancelAsync(
        string team, string project, string app, int number, AccessService access, PlatformDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppWrite, ct);
        if (problem is not null) return problem;
        var reason = $"Cancelled by {access.Caller.Email}.";
        var now = clock.GetUtcNow().UtcDateTime;
        await db.Builds.Where(b => b.AppId == a!.Id && b.Number == number && b.State == BuildStates.Queued)
            .ExecuteUpdateAsync(s => s.SetProperty(b => b.State, BuildStates.Cancelled).SetProperty(b => b.CancelRequested, true)
                .SetProperty(b => b.Reason, reason).SetProperty(b => b.FinishedAt, now), ct);
        await db.Builds.Where(b => b.AppId == a!.Id && b.Number == number && b.State == BuildStates.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(b => b.CancelRequested, true).SetProperty(b => b.Reason, reason), ct);
        var build = await db.Builds.AsNoTracking().FirstOrDefaultAsync(x => x.AppId == a!.Id && x.Number == number, ct);
        if (build is null) return Problems.NotFound($"Build #{number}");
        if (build.State is BuildStates.Succeeded or BuildStates.Failed)
            return Problems.Conflict("number", $"Build #{number} already {build.State.ToLowerInvariant()}.", "The build has finished.");
        return TypedResults.Accepted($"/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{number}", ToResponse(build, null));
    }

    /// <summary>
    /// The build's log. As text: what is there now. As <c>text/event-stream</c>: what is there, then each
    /// line as it is written (a <c>data:</c> event per line) until the build ends, then an <c>end</c> event
    /// carrying its state. A reconnecting client sends <c>Last-Event-ID</c> (the byte offset) and misses nothing.
    /// </summary>
    private static async Task<IResult> LogAsync(
        string team, string project, string app, int number, HttpContext http, AccessService access, PlatformDbContext db,
        DataLayout layout, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var b = await db.Builds.AsNoTracking().FirstOrDefaultAsync(x => x.AppId == a!.Id && x.Number == number, ct);
        if (b is null) return Problems.NotFound($"Build #{number}");
        var file = layout.BuildLog(b.Id);
        var sse = http.Request.Headers.Accept.ToString().Contains("text/event-stream", StringComparison.OrdinalIgnoreCase);
        if (!sse)
            return File.Exists(file)
                ? Results.Text(await File.ReadAllTextAsync(file, ct), "text/plain; charset=utf-8")
                : Results.Text("", "text/plain; charset=utf-8");

        long offset = long.TryParse(http.Request.Headers["Last-Event-ID"].ToString(), out var resume) && resume >= 0 ? resume : 0;
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        try
        {
            var quiet = 0;
            var state = await BuildLogFollower.FollowAsync(db, b.Id, file, offset, async (lines, end) =>
            {
                // Each event's id is the offset after its own line, so a client that reconnects mid-batch misses nothing.
                var at = end - lines.Sum(l => Encoding.UTF8.GetByteCount(l) + 1L);
                var events = new StringBuilder();
                foreach (var line in lines)
                {
                    at += Encoding.UTF8.GetByteCount(line) + 1;
                    // A carriage return inside a line would end the field in SSE (and let a build write its own id: or event:
                    // lines): each piece between them is a data: field of the same event, which clients join with newlines.
                    events.Append("id: ").Append(at).Append('\n');
                    foreach (var piece in line.TrimEnd('\r').Split('\r')) events.Append("data: ").Append(piece).Append('\n');
                    events.Append('\n');
                }
                await http.Response.WriteAsync(events.ToString(), ct);
                await http.Response.Body.FlushAsync(ct);
            }, async _ =>
            {
                if (++quiet % 15 == 0) await http.Response.WriteAsync(": keep-alive\n\n", ct);
                await http.Response.Body.FlushAsync(ct);
                return true;
            }, ct);
            await http.Response.WriteAsync($"event: end\ndata: {state}\n\n", ct);
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
        return Results.Empty;
    }
}
