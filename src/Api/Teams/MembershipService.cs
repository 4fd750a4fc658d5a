using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Teams;

/// <summary>
/// Grants and removals of roles on a team (project null) or on one project. Owners manage everyone,
/// admins manage members below owner; a team never loses its last owner.
/// </summary>
public sealed class MembershipService(PlatformDbContext db, TimeProvider clock)
{
    public async Task<Results<Ok<MemberResponse>, ProblemHttpResult>> PutAsync(
        TeamAccess access, Project? project, string email, MemberRequest body, CancellationToken ct)
    {
        if (!Roles.TryParse(body.Role, out var role))
            return Problems.Validation("role", $"must be one of {string.Join(", ", Roles.Names)}.");
        if (project is not null && role == Role.Owner)
            return Problems.Validation("role", "owner is a team role; grant it on the team.");
        var granter = project is null ? access.ManagingRole : access.EffectiveRole(project);
        if (granter is not { } g || !Roles.CanManage(g, role))
            return Problems.Forbidden($"Your role cannot grant '{role.ToWire()}'.");

        var user = await FindUserAsync(email, ct);
        if (user is null)
            return Problems.Validation("email", $"No user has the email '{email}'.");

        var membership = await db.Memberships.FirstOrDefaultAsync(
            m => m.TeamId == access.Team.Id && m.UserId == user.Id && m.ProjectId == (project == null ? null : project.Id), ct);
        if (membership is not null)
        {
            if (!Roles.CanManage(g, membership.Role))
                return Problems.Forbidden($"Your role cannot change a member who is '{membership.Role.ToWire()}'.");
            if (project is null && membership.Role == Role.Owner && role != Role.Owner && await IsLastOwnerAsync(access.Team.Id, ct))
                return Problems.Validation("role", "The team must keep at least one owner.");
            membership.Role = role;
        }
        else
        {
            db.Memberships.Add(new Membership
            {
                UserId = user.Id, TeamId = access.Team.Id, ProjectId = project?.Id, Role = role,
                CreatedAt = clock.GetUtcNow().UtcDateTime,
            });
        }
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new MemberResponse(user.Email ?? email, role.ToWire(), project?.Name));
    }

    public async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(TeamAccess access, Project? project, string email, CancellationToken ct)
    {
        var user = await FindUserAsync(email, ct);
        var membership = user is null ? null : await db.Memberships.FirstOrDefaultAsync(
            m => m.TeamId == access.Team.Id && m.UserId == user.Id && m.ProjectId == (project == null ? null : project.Id), ct);
        if (membership is null)
            return Problems.NotFound($"Member '{email}'");
        var granter = project is null ? access.ManagingRole : access.EffectiveRole(project);
        if (granter is not { } g || !Roles.CanManage(g, membership.Role))
            return Problems.Forbidden($"Your role cannot remove a member who is '{membership.Role.ToWire()}'.");
        if (project is null && membership.Role == Role.Owner && await IsLastOwnerAsync(access.Team.Id, ct))
            return Problems.Validation("email", "The team must keep at least one owner.");
        db.Memberships.Remove(membership);
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private Task<PlatformUser?> FindUserAsync(string email, CancellationToken ct)
    {
        var normalized = email.Trim().ToUpperInvariant();
        return db.Users.FirstOrDefaultAsync(u => u.NormalizedEmail == normalized, ct);
    }

    private async Task<bool> IsLastOwnerAsync(Guid teamId, CancellationToken ct) =>
        await db.Memberships.CountAsync(m => m.TeamId == teamId && m.ProjectId == null && m.Role == Role.Owner, ct) <= 1;
}
