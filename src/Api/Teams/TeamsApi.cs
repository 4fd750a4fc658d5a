using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Quotas;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Teams;

public static class TeamsApi
{
    public static RouteGroupBuilder MapTeamsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/teams", ListAsync).WithName("teams.list");
        api.MapPost("/teams", CreateAsync).WithName("teams.create");
        api.MapGet("/teams/{team}", GetAsync).WithName("teams.get");
        api.MapDelete("/teams/{team}", DeleteAsync).WithName("teams.delete");
        api.MapPut("/teams/{team}/quota", PutQuotaAsync).WithName("teams.quota.put");
        api.MapGet("/teams/{team}/members", ListMembersAsync).WithName("teams.members.list");
        api.MapPut("/teams/{team}/members/{email}", PutMemberAsync).WithName("teams.members.put");
        api.MapDelete("/teams/{team}/members/{email}", DeleteMemberAsync).WithName("teams.members.delete");
        return api;
    }

    private static async Task<Results<Ok<Page<TeamSummary>>, ProblemHttpResult>> ListAsync(
        int? limit, string? after, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var caller = access.Caller;
        var take = Paging.Take(limit);
        var query = caller.IsPlatformAdmin
            ? db.Teams.AsQueryable()
            : db.Teams.Where(t => db.Memberships.Any(m => m.TeamId == t.Id && m.UserId == caller.UserId));
        if (after is not null) query = query.Where(t => string.Compare(t.Name, after) > 0);
        var rows = await query.OrderBy(t => t.Name).Take(take + 1)
            .Select(t => new
            {
                t.Name, t.CreatedAt,
                Role = db.Memberships.Where(m => m.TeamId == t.Id && m.UserId == caller.UserId && m.ProjectId == null)
                    .Select(m => (Role?)m.Role).FirstOrDefault(),
            })
            .ToListAsync(ct);
        var (items, next) = Paging.Split(rows, take, r => r.Name);
        return TypedResults.Ok(new Page<TeamSummary>(items.Select(r => new TeamSummary(r.Name, r.CreatedAt, r.Role?.ToWire())).ToList(), next));
    }

    private static async Task<Results<Created<TeamResponse>, ProblemHttpResult>> CreateAsync(
        CreateTeamRequest body, HttpContext http, AccessService access, PlatformDbContext db, QuotaService quotas,
        IOptions<PlatformOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var caller = access.Caller;
        if (!caller.IsPlatformAdmin)
            return Problems.Forbidden("Only platform admins create teams.");
        var errors = new Problems.Errors().Name("name", body.Name);
        if (!errors.Any && Names.MaxAppNameLength("p", body.Name!) < 1)   // room for a one-letter project and app
            errors.Add("name", $"must be at most {Names.MaxLabelLength - 4} characters: its apps' host names start with the label " +
                $"'{{app}}-{{project}}-{body.Name}', and a DNS label has at most {Names.MaxLabelLength}.");
        if (errors.Any) return errors.ToProblem();
        if (await db.Teams.AnyAsync(t => t.Name == body.Name, ct))
            return Problems.Conflict("name", $"A team named '{body.Name}' exists.");

        var d = options.Value.Quotas;
        var now = clock.GetUtcNow().UtcDateTime;
        var team = new Team
        {
            Name = body.Name!, CreatedAt = now,
            Quota = new TeamQuota
            {
                MemoryMiB = d.MemoryMiB, CpuMillicores = d.CpuMillicores, Instances = d.Instances, Apps = d.Apps,
                Projects = d.Projects, RegistryGiB = d.RegistryGiB, ConcurrentBuilds = d.ConcurrentBuilds,
            },
        };
        db.Teams.Add(team);
        // The creator owns the team, so it shows on their dashboard and has someone to manage it.
        db.Memberships.Add(new Membership { UserId = caller.UserId, TeamId = team.Id, Role = Role.Owner, CreatedAt = now });
        await db.SaveChangesAsync(ct);
        http.Items[Audit.AuditFilter.TeamItem] = team.Name;
        return TypedResults.Created($"/api/v1/teams/{team.Name}",
            new TeamResponse(team.Name, team.CreatedAt, Role.Owner.ToWire(), await quotas.TeamReportAsync(team, ct)));
    }

    private static async Task<Results<Ok<TeamResponse>, ProblemHttpResult>> GetAsync(
        string team, AccessService access, QuotaService quotas, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var a = t.Value!;
        return TypedResults.Ok(new TeamResponse(a.Team.Name, a.Team.CreatedAt, a.TeamRole?.ToWire(), await quotas.TeamReportAsync(a.Team, ct)));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string team, AccessService access, PlatformDbContext db, QuotaService quotas, Apps.AppRemoval removal, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamDelete, ct);
        if (t.Problem is { } p) return p;
        var target = t.Value!.Team;
        Apps.AppRemoval.Plan plan;
        // In the team's admission, so no app is created in it between the plan and the delete.
        await using (var tx = await quotas.BeginAdmissionAsync(target.Id, ct))
        {
            // Projects, apps, instances, builds, memberships and registry repositories go with it (cascade),
            // the instances out of their nodes' desired state at once.
            plan = await removal.PrepareAsync(db.Apps.Where(a => a.Project!.TeamId == target.Id), db.RegistryRepositories.Where(r => r.TeamId == target.Id), ct);
            db.Teams.Remove(target);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
        }
        await removal.FinishAsync(plan);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<TeamQuotaResponse>, ProblemHttpResult>> PutQuotaAsync(
        string team, TeamQuotaRequest body, AccessService access, PlatformDbContext db, QuotaService quotas, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamQuotaWrite, ct);
        if (t.Problem is { } p) return p;
        var errors = new Problems.Errors();
        Required(errors, "memoryMiB", body.MemoryMiB);
        Required(errors, "cpuMillicores", body.CpuMillicores);
        Required(errors, "instances", body.Instances);
        Required(errors, "apps", body.Apps);
        Required(errors, "projects", body.Projects);
        Required(errors, "registryGiB", body.RegistryGiB);
        Required(errors, "concurrentBuilds", body.ConcurrentBuilds);
        if (body.Build is { } b)   // 0 means the platform's default
        {
            errors.Range("build.memoryMiB", b.MemoryMiB is 0 ? null : b.MemoryMiB, 64, 1024 * 1024);
            errors.Range("build.cpuMillicores", b.CpuMillicores is 0 ? null : b.CpuMillicores, 100, 1000 * 1000);
            errors.Range("build.pids", b.Pids is 0 ? null : b.Pids, 16, 1_000_000);
            errors.Range("build.timeoutSeconds", b.TimeoutSeconds is 0 ? null : b.TimeoutSeconds, 5, 24 * 3600);
        }
        if (errors.Any) return errors.ToProblem();

        var q = t.Value!.Team.Quota;
        q.MemoryMiB = body.MemoryMiB!.Value;
        q.CpuMillicores = body.CpuMillicores!.Value;
        q.Instances = body.Instances!.Value;
        q.Apps = body.Apps!.Value;
        q.Projects = body.Projects!.Value;
        q.RegistryGiB = body.RegistryGiB!.Value;
        q.ConcurrentBuilds = body.ConcurrentBuilds!.Value;
        if (body.Build is { } limits)
        {
            q.BuildMemoryMiB = limits.MemoryMiB ?? q.BuildMemoryMiB;
            q.BuildCpuMillicores = limits.CpuMillicores ?? q.BuildCpuMillicores;
            q.BuildPids = limits.Pids ?? q.BuildPids;
            q.BuildTimeoutSeconds = limits.TimeoutSeconds ?? q.BuildTimeoutSeconds;
        }
        // Lowering a quota below usage is allowed (as in Kubernetes): it blocks growth, never stops what runs.
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(await quotas.TeamReportAsync(t.Value.Team, ct));
    }

    internal static void Required(Problems.Errors errors, string field, long? value)
    {
        if (value is null) errors.Add(field, "is required.");
        else errors.Range(field, value, 0, Quantities.MaxQuota);
    }

    private static async Task<Results<Ok<Page<MemberResponse>>, ProblemHttpResult>> ListMembersAsync(
        string team, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamMembersRead, ct);
        if (t.Problem is { } p) return p;
        var rows = await db.Memberships.AsNoTracking().Where(m => m.TeamId == t.Value!.Team.Id)
            .Select(m => new { m.User!.Email, m.Role, Project = m.Project == null ? null : m.Project.Name })
            .ToListAsync(ct);
        var items = rows.OrderBy(r => r.Project).ThenBy(r => r.Email)
            .Select(r => new MemberResponse(r.Email ?? "", r.Role.ToWire(), r.Project)).ToList();
        return TypedResults.Ok(new Page<MemberResponse>(items, null));
    }

    private static async Task<Results<Ok<MemberResponse>, ProblemHttpResult>> PutMemberAsync(
        string team, string email, MemberRequest body, AccessService access, MembershipService members, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamMembersWrite, ct);
        if (t.Problem is { } p) return p;
        return await members.PutAsync(t.Value!, null, email, body, ct);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteMemberAsync(
        string team, string email, AccessService access, MembershipService members, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamMembersWrite, ct);
        if (t.Problem is { } p) return p;
        return await members.DeleteAsync(t.Value!, null, email, ct);
    }
}
