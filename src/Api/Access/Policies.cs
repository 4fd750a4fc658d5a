using Platform.Contracts;

namespace Platform.Api.Access;

/// <summary>Everything a caller may do to a team, a project or what they hold.</summary>
public enum Permission
{
    TeamRead,
    TeamDelete,
    TeamQuotaWrite,
    TeamMembersRead,
    TeamMembersWrite,
    TeamAuditRead,
    ProjectCreate,
    ProjectRead,
    ProjectDelete,
    ProjectQuotaWrite,
    ProjectMembersWrite,
    AppRead,
    AppWrite,
    SecretsRead,
}

/// <summary>
/// The role model (docs/architecture.md, "Tenancy and roles") in one table. A permission is held by a minimum role, either on the
/// team (covering all its projects) or effective on a project (the higher of the team role and the
/// project role). Platform admins hold every permission. Visibility (404 versus 403) is decided
/// before this table: a caller with no role anywhere in a team never reaches it.
/// </summary>
public static class Policies
{
    public enum Scope { Team, Project, PlatformAdminOnly }

    public readonly record struct Rule(Scope Scope, Role MinimumRole);

    public static readonly IReadOnlyDictionary<Permission, Rule> Table = new Dictionary<Permission, Rule>
    {
        [Permission.TeamRead] = new(Scope.Project, Role.Viewer),          // any role anywhere in the team
        [Permission.TeamDelete] = new(Scope.Team, Role.Owner),
        [Permission.TeamQuotaWrite] = new(Scope.PlatformAdminOnly, Role.Owner),
        [Permission.TeamMembersRead] = new(Scope.Team, Role.Viewer),
        [Permission.TeamMembersWrite] = new(Scope.Team, Role.Admin),
        [Permission.TeamAuditRead] = new(Scope.Team, Role.Admin),
        [Permission.ProjectCreate] = new(Scope.Team, Role.Admin),
        [Permission.ProjectRead] = new(Scope.Project, Role.Viewer),
        [Permission.ProjectDelete] = new(Scope.Team, Role.Admin),
        [Permission.ProjectQuotaWrite] = new(Scope.Team, Role.Admin),
        [Permission.ProjectMembersWrite] = new(Scope.Project, Role.Admin),
        [Permission.AppRead] = new(Scope.Project, Role.Viewer),
        [Permission.AppWrite] = new(Scope.Project, Role.Developer),
        [Permission.SecretsRead] = new(Scope.Project, Role.Developer),
    };

    /// <param name="platformAdmin">Platform admins pass every check.</param>
    /// <param name="teamRole">The caller's role on the whole team, if any.</param>
    /// <param name="projectRole">The caller's role on the project in question, if any (null for team checks).</param>
    public static bool Allows(Permission permission, bool platformAdmin, Role? teamRole, Role? projectRole)
    {
        if (platformAdmin) return true;
        var rule = Table[permission];
        var held = rule.Scope switch
        {
            Scope.Team => teamRole,
            Scope.Project => Max(teamRole, projectRole),
            _ => null,
        };
        return held is { } r && r >= rule.MinimumRole;
    }

    private static Role? Max(Role? a, Role? b) => a is null ? b : b is null ? a : (Role)Math.Max((int)a.Value, (int)b.Value);
}
