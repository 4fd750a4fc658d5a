using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Quotas;
using Platform.Api.Teams;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Projects;

public static class ProjectsApi
{
    public static RouteGroupBuilder MapProjectsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/teams/{team}/projects", ListAsync).WithName("projects.list");
        api.MapPost("/teams/{team}/projects", CreateAsync).WithName("projects.create");
        api.MapGet("/teams/{team}/projects/{project}", GetAsync).WithName("projects.get");
        api.MapDelete("/teams/{team}/projects/{project}", DeleteAsync).WithName("projects.delete");
        api.MapPut("/teams/{team}/projects/{project}/quota", PutQuotaAsync).WithName("projects.quota.put");
        api.MapPut("/teams/{team}/projects/{project}/members/{email}", PutMemberAsync).WithName("projects.members.put");
        api.MapDelete("/teams/{team}/projects/{project}/members/{email}", DeleteMemberAsync).WithName("projects.members.delete");
        return api;
    }

    private static async Task<Results<Ok<Page<ProjectSummary>>, ProblemHttpResult>> ListAsync(
        string team, int? limit, string? after, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var a = t.Value!;
        var query = db.Projects.AsNoTracking().Where(x => x.TeamId == a.Team.Id);
        if (a.VisibleProjectIds is { } visible)
            query = query.Where(x => visible.Contains(x.Id));
        if (after is not null) query = query.Where(x => string.Compare(x.Name, after) > 0);
        var take = Paging.Take(limit);
        var rows = await query.OrderBy(x => x.Name).Take(take + 1).Select(x => new ProjectSummary(x.Name, team, x.CreatedAt)).ToListAsync(ct);
        var (items, next) = Paging.Split(rows, take, r => r.Name);
        return TypedResults.Ok(new Page<ProjectSummary>(items, next));
    }

    private static async Task<Results<Created<ProjectResponse>, ProblemHttpResult>> CreateAsync(
        string team, CreateProjectRequest body, AccessService access, PlatformDbContext db, QuotaService quotas,
        TimeProvider clock, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.ProjectCreate, ct);
        if (t.Problem is { } p) return p;
        var errors = new Problems.Errors().Name("name", body.Name);
        if (!errors.Any && Names.MaxAppNameLength(body.Name!, team) < 1)
            errors.Add("name", $"must be at most {Math.Max(0, Names.MaxLabelLength - team.Length - 3)} characters in team '{team}': its apps' host names start " +
                $"with the label '{{app}}-{{project}}-{team}', and a DNS label has at most {Names.MaxLabelLength}.");
        if (errors.Any) return errors.ToProblem();
        var a = t.Value!;

        await using var tx = await quotas.BeginAdmissionAsync(a.Team.Id, ct);
        if (await db.Projects.AnyAsync(x => x.TeamId == a.Team.Id && x.Name == body.Name, ct))
            return Problems.Conflict("name", $"A project named '{body.Name}' exists in team '{team}'.");
        var count = await quotas.ProjectCountAsync(a.Team.Id, ct);
        if (count + 1 > a.Team.Quota.Projects)
            return Problems.QuotaExceeded([new QuotaFigure("projects", "team", 1, count, a.Team.Quota.Projects)]);
        var project = new Project { TeamId = a.Team.Id, Name = body.Name!, CreatedAt = clock.GetUtcNow().UtcDateTime };
        db.Projects.Add(project);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Created($"/api/v1/teams/{team}/projects/{project.Name}",
            new ProjectResponse(project.Name, team, project.CreatedAt, a.EffectiveRole(project)?.ToWire(), await quotas.ProjectReportAsync(project, ct)));
    }

    private static async Task<Results<Ok<ProjectResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, AccessService access, QuotaService quotas, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await access.ProjectAsync(t.Value!, project, Permission.ProjectRead, ct);
        if (pr.Problem is { } pp) return pp;
        var x = pr.Value!;
        return TypedResults.Ok(new ProjectResponse(x.Name, team, x.CreatedAt, t.Value!.EffectiveRole(x)?.ToWire(), await quotas.ProjectReportAsync(x, ct)));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string team, string project, AccessService access, PlatformDbContext db, QuotaService quotas, Apps.AppRemoval removal, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await access.ProjectAsync(t.Value!, project, Permission.ProjectDelete, ct);
        if (pr.Problem is { } pp) return pp;
        var target = pr.Value!;
        Apps.AppRemoval.Plan plan;
        await using (var tx = await quotas.BeginAdmissionAsync(t.Value!.Team.Id, ct))
        {
            var used = await quotas.ProjectUsageAsync(target.Id, ct);   // fresh, under the lock
            // Its apps, instances, builds and registry repositories go with it (cascade), out of their nodes' desired state at once.
            plan = await removal.PrepareAsync(db.Apps.Where(a => a.ProjectId == target.Id), db.RegistryRepositories.Where(r => r.ProjectId == target.Id), ct);
            db.Projects.Remove(target);
            await db.SaveChangesAsync(ct);
            await quotas.ApplyAsync(t.Value.Team.Id, null, default(AppFootprint) - used, ct);   // give the apps' usage back to the team
            await tx.CommitAsync(ct);
        }
        await removal.FinishAsync(plan);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<ProjectQuotaResponse>, ProblemHttpResult>> PutQuotaAsync(
        string team, string project, ProjectQuotaRequest body, AccessService access, PlatformDbContext db,
        QuotaService quotas, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await access.ProjectAsync(t.Value!, project, Permission.ProjectQuotaWrite, ct);
        if (pr.Problem is { } pp) return pp;
        var errors = new Problems.Errors()
            .Range("memoryMiB", body.MemoryMiB, 0, Quantities.MaxQuota)
            .Range("cpuMillicores", body.CpuMillicores, 0, Quantities.MaxQuota)
            .Range("instances", body.Instances, 0, Quantities.MaxQuota)
            .Range("apps", body.Apps, 0, Quantities.MaxQuota);
        if (errors.Any) return errors.ToProblem();

        var team_ = t.Value!.Team;
        var target = pr.Value!;
        await using var tx = await quotas.BeginAdmissionAsync(team_.Id, ct);
        // Project quotas split the team's: their sum, per dimension, stays within the team's limit.
        var others = await db.Projects.AsNoTracking().Where(x => x.TeamId == team_.Id && x.Id != target.Id)
            .Select(x => new { x.Quota.MemoryMiB, x.Quota.CpuMillicores, x.Quota.Instances, x.Quota.Apps })
            .ToListAsync(ct);
        var figures = new List<QuotaFigure>();
        Split("memoryMiB", body.MemoryMiB, others.Sum(o => o.MemoryMiB ?? 0), team_.Quota.MemoryMiB);
        Split("cpuMillicores", body.CpuMillicores, others.Sum(o => o.CpuMillicores ?? 0), team_.Quota.CpuMillicores);
        Split("instances", body.Instances, others.Sum(o => o.Instances ?? 0), team_.Quota.Instances);
        Split("apps", body.Apps, others.Sum(o => o.Apps ?? 0), team_.Quota.Apps);
        if (figures.Count > 0) return Problems.QuotaExceeded(figures);

        target.Quota.MemoryMiB = body.MemoryMiB;
        target.Quota.CpuMillicores = body.CpuMillicores;
        target.Quota.Instances = body.Instances;
        target.Quota.Apps = body.Apps;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(await quotas.ProjectReportAsync(target, ct));

        void Split(string resource, long? asked, long allocated, long limit)
        {
            if (asked is { } a && allocated + a > limit)
                figures.Add(new QuotaFigure(resource, "team", a, allocated, limit));
        }
    }

    private static async Task<Results<Ok<MemberResponse>, ProblemHttpResult>> PutMemberAsync(
        string team, string project, string email, MemberRequest body, AccessService access, MembershipService members, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await access.ProjectAsync(t.Value!, project, Permission.ProjectMembersWrite, ct);
        if (pr.Problem is { } pp) return pp;
        return await members.PutAsync(t.Value!, pr.Value!, email, body, ct);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteMemberAsync(
        string team, string project, string email, AccessService access, MembershipService members, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var pr = await access.ProjectAsync(t.Value!, project, Permission.ProjectMembersWrite, ct);
        if (pr.Problem is { } pp) return pp;
        return await members.DeleteAsync(t.Value!, pr.Value!, email, ct);
    }
}
