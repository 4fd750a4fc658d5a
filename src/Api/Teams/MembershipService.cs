using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Quotas;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Teams;

/// <summary>
/// Grants and removals of roles on a team (project null) or on one project. Owners manage everyone,
/// admins manage members below owner; a team never loses its last owner. Every change runs under the
/// team's lock (<see cref="QuotaService.BeginAdmissionAsync"/>: a row lock on PostgreSQL, the write lock
/// on SQLite, on every replica), and the check reads inside it: two owners demoting each other at once
/// are one after the other, and the second sees that it would leave no owner.
/// </summary>
public sealed class MembershipService(PlatformDbContext db, QuotaService quotas, TimeProvider clock)
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

        await using var locked = await quotas.BeginAdmissionAsync(access.Team.Id, ct);
        if (project is null)
        {
            if (await ManagingRoleNowAsync(access, ct) is not { } now || !Roles.CanManage(now, role))
                return Problems.Forbidden($"Your role cannot grant '{role.ToWire()}'.");
            g = now;
        }
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
        await locked.CommitAsync(ct);
        return TypedResults.Ok(new MemberResponse(user.Email ?? email, role.ToWire(), project?.Name));
    }

    public async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(TeamAccess access, Project? project, string email, CancellationToken ct)
    {
        var user = await FindUserAsync(email, ct);
        await using var locked = await quotas.BeginAdmissionAsync(access.Team.Id, ct);
        var membership = user is null ? null : await db.Memberships.FirstOrDefaultAsync(
            m => m.TeamId == access.Team.Id && m.UserId == user.Id && m.ProjectId == (project == null ? null : project.Id), ct);
        if (membership is null)
            return Problems.NotFound($"Member '{email}'");
        var granter = project is null ? await ManagingRoleNowAsync(access, ct) : access.EffectiveRole(project);
        if (granter is not { } g || !Roles.CanManage(g, membership.Role))
            return Problems.Forbidden($"Your role cannot remove a member who is '{membership.Role.ToWire()}'.");
        if (project is null && membership.Role == Role.Owner && await IsLastOwnerAsync(access.Team.Id, ct))
            return Problems.Validation("email", "The team must keep at least one owner.");
        db.Memberships.Remove(membership);
        await db.SaveChangesAsync(ct);
        await locked.CommitAsync(ct);
        return TypedResults.NoContent();
    }

    private Task<PlatformUser?> FindUserAsync(string email, CancellationToken ct)
    {
        var normalized = email.Trim().ToUpperInvariant();
        return db.Users.FirstOrDefaultAsync(u => u.NormalizedEmail == normalized, ct);
    }

    /// <summary>
    /// The caller's managing role on the team as it is now, read under the team's lock: an owner demoted a
    /// moment ago by a concurrent request no longer acts as one.
    /// </summary>
    private async Task<Role?> ManagingRoleNowAsync(TeamAccess access, CancellationToken ct) =>
        access.Caller.IsPlatformAdmin ? Role.Owner
        : await db.Memberships.Where(m => m.TeamId == access.Team.Id && m.UserId == access.Caller.UserId && m.ProjectId == null)
            .Select(m => (Role?)m.Role).FirstOrDefaultAsync(ct);

    /// <summary>Read under the team's lock (see the class): a count no concurrent change can make stale before the commit.</summary>
    private async Task<bool> IsLastOwnerAsync(Guid teamId, CancellationToken ct) =>
        await db.Memberships.CountAsync(m => m.TeamId == teamId && m.ProjectId == null && m.Role == Role.Owner, ct) <= 1;
}
