using Microsoft.EntityFrameworkCore;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Quotas;

/// <summary>
/// Usage and admission. Every admission runs in a transaction that first bumps the team's
/// <see cref="Team.AdmissionRevision"/>: that row lock (PostgreSQL) or write lock (SQLite) makes
/// concurrent admissions in one team take turns, on any number of Api replicas, so two requests can
/// never both fit into the last free slice of a quota.
/// </summary>
public sealed class QuotaService(PlatformDbContext db, Registry.RegistryService registry)
{
    public async Task LockTeamAsync(Guid teamId, CancellationToken ct) =>
        await db.Teams.Where(t => t.Id == teamId)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.AdmissionRevision, t => t.AdmissionRevision + 1), ct);

    public async Task<AppFootprint> TeamUsageAsync(Guid teamId, CancellationToken ct) =>
        await UsageAsync(db.Apps.Where(a => a.Project!.TeamId == teamId), ct);

    public async Task<AppFootprint> ProjectUsageAsync(Guid projectId, CancellationToken ct) =>
        await UsageAsync(db.Apps.Where(a => a.ProjectId == projectId), ct);

    public Task<int> ProjectCountAsync(Guid teamId, CancellationToken ct) =>
        db.Projects.CountAsync(p => p.TeamId == teamId, ct);

    private static async Task<AppFootprint> UsageAsync(IQueryable<App> apps, CancellationToken ct)
    {
        var u = await apps.GroupBy(_ => 1).Select(g => new
        {
            Memory = g.Sum(a => (long)a.Instances * a.MemoryMiB),
            Cpu = g.Sum(a => (long)a.Instances * a.CpuMillicores),
            Instances = g.Sum(a => (long)a.Instances),
            Apps = g.LongCount(),
        }).FirstOrDefaultAsync(ct);
        return u is null ? default : new AppFootprint(u.Memory, u.Cpu, u.Instances, u.Apps);
    }

    /// <summary>Checks a change of <paramref name="delta"/> in a project against the project's and the team's quotas.</summary>
    public async Task<IReadOnlyList<QuotaFigure>> AdmitAsync(Team team, Project project, AppFootprint delta, CancellationToken ct)
    {
        var projectUsed = await ProjectUsageAsync(project.Id, ct);
        var teamUsed = await TeamUsageAsync(team.Id, ct);
        var pq = project.Quota;
        var tq = team.Quota;
        return
        [
            .. QuotaMath.Violations("project", projectUsed, delta, new QuotaLimits(pq.MemoryMiB, pq.CpuMillicores, pq.Instances, pq.Apps)),
            .. QuotaMath.Violations("team", teamUsed, delta, new QuotaLimits(tq.MemoryMiB, tq.CpuMillicores, tq.Instances, tq.Apps)),
        ];
    }

    public async Task<TeamQuotaResponse> TeamReportAsync(Team team, CancellationToken ct)
    {
        var used = await TeamUsageAsync(team.Id, ct);
        var projects = await ProjectCountAsync(team.Id, ct);
        var registryBytes = await registry.TeamBytesAsync(team.Id, ct);
        var q = team.Quota;
        return new TeamQuotaResponse(
            new(q.MemoryMiB, used.MemoryMiB), new(q.CpuMillicores, used.CpuMillicores), new(q.Instances, used.Instances),
            new(q.Apps, used.Apps), new(q.Projects, projects),
            new(q.RegistryGiB, (registryBytes + Registry.RegistryService.GiB - 1) / Registry.RegistryService.GiB),
            new(q.ConcurrentBuilds, 0),   // the build queue (issue 6) reports running builds here
            registryBytes);
    }

    public async Task<ProjectQuotaResponse> ProjectReportAsync(Project project, CancellationToken ct)
    {
        var used = await ProjectUsageAsync(project.Id, ct);
        var q = project.Quota;
        return new ProjectQuotaResponse(new(q.MemoryMiB, used.MemoryMiB), new(q.CpuMillicores, used.CpuMillicores),
            new(q.Instances, used.Instances), new(q.Apps, used.Apps));
    }
}
