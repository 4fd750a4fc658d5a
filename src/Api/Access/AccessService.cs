using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Access;

/// <summary>The signed-in person behind a request, read from the database on every request so that a
/// lock-out or a lost admin flag takes effect at once, whatever token they hold.</summary>
public sealed record Caller(string UserId, string Email, bool IsPlatformAdmin);

/// <summary>A value or the problem that stops the request (404 hidden, 403 visible but not allowed, …).</summary>
public readonly record struct Resolved<T>(T? Value, ProblemHttpResult? Problem) where T : class
{
    public static implicit operator Resolved<T>(T value) => new(value, null);
    public static implicit operator Resolved<T>(ProblemHttpResult problem) => new(null, problem);
}

/// <summary>What one caller holds in one team: their team role and their project roles.</summary>
public sealed class TeamAccess(Team team, Caller caller, Role? teamRole, IReadOnlyDictionary<Guid, Role> projectRoles)
{
    public Team Team { get; } = team;
    public Caller Caller { get; } = caller;
    public Role? TeamRole { get; } = teamRole;
    public IReadOnlyDictionary<Guid, Role> ProjectRoles { get; } = projectRoles;

    /// <summary>The role used when managing members: platform admins act as owners.</summary>
    public Role? ManagingRole => Caller.IsPlatformAdmin ? Role.Owner : TeamRole;

    public bool Can(Permission permission) =>
        Policies.Allows(permission, Caller.IsPlatformAdmin, TeamRole,
            ProjectRoles.Count == 0 ? null : ProjectRoles.Values.Max());

    public bool Can(Permission permission, Project project) =>
        Policies.Allows(permission, Caller.IsPlatformAdmin, TeamRole, ProjectRoles.GetValueOrDefault(project.Id));

    /// <summary>The projects the caller may see in this team, or null when they see all of them.</summary>
    public IReadOnlyCollection<Guid>? VisibleProjectIds =>
        Caller.IsPlatformAdmin || TeamRole is not null ? null : ProjectRoles.Keys.ToList();

    public bool CanSee(Project project) =>
        Caller.IsPlatformAdmin || TeamRole is not null || ProjectRoles.ContainsKey(project.Id);

    public Role? EffectiveRole(Project project) =>
        Caller.IsPlatformAdmin ? Role.Owner
        : ProjectRoles.TryGetValue(project.Id, out var p) && (TeamRole is null || p > TeamRole) ? p : TeamRole;
}

public sealed class AccessService(PlatformDbContext db, IHttpContextAccessor http)
{
    public const string CallerItem = "platform.caller";

    public Caller Caller => http.HttpContext?.Items[CallerItem] as Caller
        ?? throw new InvalidOperationException("The caller is set by CallerFilter on every /api/v1 endpoint.");

    /// <summary>
    /// The team as the caller may see it: a 404 when it does not exist or the caller holds no role
    /// anywhere in it (existence is not leaked), a 403 when visible but <paramref name="permission"/> is not held.
    /// </summary>
    public async Task<Resolved<TeamAccess>> TeamAsync(string teamName, Permission permission, CancellationToken ct)
    {
        var caller = Caller;
        // The team and the caller's roles in it, in one query.
        var row = Names.IsDns1123Label(teamName)
            ? await db.Teams.Where(t => t.Name == teamName)
                .Select(t => new
                {
                    Team = t,
                    Memberships = db.Memberships.Where(m => m.TeamId == t.Id && m.UserId == caller.UserId)
                        .Select(m => new { m.ProjectId, m.Role }).ToList(),
                })
                .FirstOrDefaultAsync(ct)
            : null;
        if (row is null)
            return Problems.NotFound($"Team '{teamName}'");
        var team = row.Team;
        var memberships = row.Memberships;
        if (memberships.Count == 0 && !caller.IsPlatformAdmin)
            return Problems.NotFound($"Team '{teamName}'");

        var access = new TeamAccess(team, caller,
            memberships.Where(m => m.ProjectId is null).Select(m => (Role?)m.Role).FirstOrDefault(),
            memberships.Where(m => m.ProjectId is not null).ToDictionary(m => m.ProjectId!.Value, m => m.Role));
        if (!access.Can(permission))
            return Problems.Forbidden($"Your role in team '{teamName}' does not allow this ({permission}).");
        return access;
    }

    /// <summary>The project inside a resolved team, with the same 404/403 rule at project level.</summary>
    public async Task<Resolved<Project>> ProjectAsync(TeamAccess access, string projectName, Permission permission, CancellationToken ct)
    {
        var project = Names.IsDns1123Label(projectName)
            ? await db.Projects.FirstOrDefaultAsync(p => p.TeamId == access.Team.Id && p.Name == projectName, ct)
            : null;
        if (project is null || !access.CanSee(project))
            return Problems.NotFound($"Project '{projectName}'");
        if (!access.Can(permission, project))
            return Problems.Forbidden($"Your role in project '{projectName}' does not allow this ({permission}).");
        return project;
    }

    /// <summary>A project as the caller may use it: the team's or the project's problem (404/403), or both resolved.</summary>
    public async Task<Resolved<ProjectScope>> ProjectScopeAsync(string team, string project, Permission permission, CancellationToken ct)
    {
        var t = await TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await ProjectAsync(t.Value!, project, permission, ct);
        if (pr.Problem is { } pp) return pp;
        return new ProjectScope(t.Value!, pr.Value!);
    }

    /// <summary>An app as the caller may use it: the scope's problem (404/403), a 404 for an unknown app, or the app (tracked) and its scope.</summary>
    public async Task<(App? App, ProjectScope? Scope, ProblemHttpResult? Problem)> AppAsync(
        string team, string project, string app, Permission permission, CancellationToken ct)
    {
        var s = await ProjectScopeAsync(team, project, permission, ct);
        if (s.Problem is { } p) return (null, null, p);
        var a = await FindAppAsync(s.Value!.Project, app, ct);
        return a is null ? (null, null, Problems.NotFound($"App '{app}'")) : (a, s.Value, null);
    }

    /// <summary>The app named <paramref name="app"/> in a project already resolved (tracked, for changes), or null.</summary>
    public Task<App?> FindAppAsync(Project project, string app, CancellationToken ct) =>
        Names.IsDns1123Label(app)
            ? db.Apps.FirstOrDefaultAsync(a => a.ProjectId == project.Id && a.Name == app, ct)
            : Task.FromResult<App?>(null);
}

/// <summary>A project the caller may use and what they hold in its team.</summary>
public sealed record ProjectScope(TeamAccess Access, Project Project)
{
    public bool SeesSecrets => Access.Can(Permission.SecretsRead, Project);
}

/// <summary>
/// Runs first on every /api/v1 endpoint that needs a person: resolves the caller from the token's
/// subject, refuses deleted or locked-out users (401) and machine clients such as node agents (403).
/// </summary>
public sealed class CallerFilter(PlatformDbContext db, TimeProvider clock) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (http.User.FindFirst("client_kind")?.Value == "machine")
            return Problems.Forbidden("Machine clients cannot use this endpoint.");
        if (http.Items[AccessService.CallerItem] is Caller resolved && resolved.UserId == http.User.FindFirst(Claims.Subject)?.Value)
            return await next(context);   // resolved with the personal access token, in the same query
        var subject = http.User.FindFirst(Claims.Subject)?.Value;
        if (subject is null)
            return TypedResults.Unauthorized();
        var now = clock.GetUtcNow();
        var user = await db.Users.AsNoTracking()
            .Where(u => u.Id == subject)
            .Select(u => new { u.Id, u.Email, u.IsPlatformAdmin, u.LockoutEnd })
            .FirstOrDefaultAsync(http.RequestAborted);
        if (user is null || user.LockoutEnd > now)
            return TypedResults.Unauthorized();
        http.Items[AccessService.CallerItem] = new Caller(user.Id, user.Email ?? "", user.IsPlatformAdmin);
        return await next(context);
    }
}
