using Microsoft.EntityFrameworkCore;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Quotas;

/// <summary>
/// Usage and admission. Every admission runs in a transaction that first bumps the team's
/// <see cref="Team.AdmissionRevision"/>: that row lock (PostgreSQL) or write lock (SQLite) makes
/// concurrent admissions in one team take turns, on any number of Api replicas, so two requests can
/// never both fit into the last free slice of a quota. Usage lives in counters on the team and
/// project rows: creating or resizing an app checks and moves them in two conditional updates
/// (<see cref="TryReserveAsync"/>), deleting moves them back (<see cref="ApplyAsync"/>), so an
/// admission costs a few single-row statements whatever the number of apps.
/// </summary>
public sealed class QuotaService(PlatformDbContext db, Registry.RegistryQuota registry, AdmissionGate gate, Microsoft.Extensions.Options.IOptions<Infrastructure.PlatformOptions> options)
{
    /// <summary>
    /// Starts an admission: a transaction holding the team's row lock. Admissions first queue, in
    /// order, on an in-process async gate (one for all of SQLite, which has one writer; one per team
    /// stripe on PostgreSQL), so waiting requests yield their threads and connections instead of
    /// piling up in the database's lock queue; the row lock still orders replicas among themselves.
    /// </summary>
    /// <param name="lockNow">False when the first statement of the admission is <see cref="TryReserveAsync"/>,
    /// whose conditional update of the team row takes the same lock without an extra round trip.</param>
    public async Task<Admission> BeginAdmissionAsync(Guid teamId, CancellationToken ct, bool lockNow = true)
    {
        var semaphore = gate.For(teamId, db.Database.IsSqlite());
        await semaphore.WaitAsync(ct);
        try
        {
            var tx = await db.Database.BeginTransactionAsync(ct);
            if (lockNow)
                await db.Teams.Where(t => t.Id == teamId)
                    .ExecuteUpdateAsync(s => s.SetProperty(t => t.AdmissionRevision, t => t.AdmissionRevision + 1), ct);
            return new Admission(tx, semaphore);
        }
        catch
        {
            semaphore.Release();
            throw;
        }
    }

    public Task<AppFootprint> TeamUsageAsync(Guid teamId, CancellationToken ct) =>
        db.Teams.AsNoTracking().Where(t => t.Id == teamId)
            .Select(t => new AppFootprint(t.UsedMemoryMiB, t.UsedCpuMillicores, t.UsedInstances, t.UsedApps)).FirstAsync(ct);

    public Task<AppFootprint> ProjectUsageAsync(Guid projectId, CancellationToken ct) =>
        db.Projects.AsNoTracking().Where(p => p.Id == projectId)
            .Select(p => new AppFootprint(p.UsedMemoryMiB, p.UsedCpuMillicores, p.UsedInstances, p.UsedApps)).FirstAsync(ct);

    public Task<int> ProjectCountAsync(Guid teamId, CancellationToken ct) =>
        db.Projects.CountAsync(p => p.TeamId == teamId, ct);

    /// <summary>
    /// The dimensions in which <paramref name="delta"/> does not fit the project's or the team's quota,
    /// read from the counters: the figures that explain a refusal of <see cref="TryReserveAsync"/>.
    /// </summary>
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

    /// <summary>
    /// Admission in two statements: the team row, then the project row, each moved by
    /// <paramref name="delta"/> only if every dimension that grows stays within its limit (a
    /// shrinking dimension always passes). The first statement takes the team's row lock, and the
    /// database re-checks the condition on the latest committed row, so concurrent admissions cannot
    /// over-admit. False when refused: roll the admission back, then ask <see cref="AdmitAsync"/> for the figures.
    /// Limits are those read with the request; a quota lowered meanwhile binds the next admission.
    /// </summary>
    public async Task<bool> TryReserveAsync(Team team, Project project, AppFootprint d, CancellationToken ct)
    {
        var tq = team.Quota;
        var pq = project.Quota;
        var teamMoved = await db.Teams.Where(t => t.Id == team.Id
                && (d.MemoryMiB <= 0 || t.UsedMemoryMiB + d.MemoryMiB <= tq.MemoryMiB)
                && (d.CpuMillicores <= 0 || t.UsedCpuMillicores + d.CpuMillicores <= tq.CpuMillicores)
                && (d.Instances <= 0 || t.UsedInstances + d.Instances <= tq.Instances)
                && (d.Apps <= 0 || t.UsedApps + d.Apps <= tq.Apps))
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.AdmissionRevision, t => t.AdmissionRevision + 1)
                .SetProperty(t => t.UsedMemoryMiB, t => t.UsedMemoryMiB + d.MemoryMiB)
                .SetProperty(t => t.UsedCpuMillicores, t => t.UsedCpuMillicores + d.CpuMillicores)
                .SetProperty(t => t.UsedInstances, t => t.UsedInstances + d.Instances)
                .SetProperty(t => t.UsedApps, t => t.UsedApps + d.Apps), ct);
        if (teamMoved == 0) return false;
        long? pm = pq.MemoryMiB, pc = pq.CpuMillicores, pi = pq.Instances, pa = pq.Apps;
        var projectMoved = await db.Projects.Where(p => p.Id == project.Id
                && (pm == null || d.MemoryMiB <= 0 || p.UsedMemoryMiB + d.MemoryMiB <= pm)
                && (pc == null || d.CpuMillicores <= 0 || p.UsedCpuMillicores + d.CpuMillicores <= pc)
                && (pi == null || d.Instances <= 0 || p.UsedInstances + d.Instances <= pi)
                && (pa == null || d.Apps <= 0 || p.UsedApps + d.Apps <= pa))
            .ExecuteUpdateAsync(s => s
                .SetProperty(p => p.UsedMemoryMiB, p => p.UsedMemoryMiB + d.MemoryMiB)
                .SetProperty(p => p.UsedCpuMillicores, p => p.UsedCpuMillicores + d.CpuMillicores)
                .SetProperty(p => p.UsedInstances, p => p.UsedInstances + d.Instances)
                .SetProperty(p => p.UsedApps, p => p.UsedApps + d.Apps), ct);
        return projectMoved == 1;
    }

    /// <summary>Moves the team's and the project's usage counters by <paramref name="delta"/> (in the admission transaction).</summary>
    public async Task ApplyAsync(Guid teamId, Guid? projectId, AppFootprint delta, CancellationToken ct)
    {
        if (delta == default) return;
        await db.Teams.Where(t => t.Id == teamId).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.UsedMemoryMiB, t => t.UsedMemoryMiB + delta.MemoryMiB)
            .SetProperty(t => t.UsedCpuMillicores, t => t.UsedCpuMillicores + delta.CpuMillicores)
            .SetProperty(t => t.UsedInstances, t => t.UsedInstances + delta.Instances)
            .SetProperty(t => t.UsedApps, t => t.UsedApps + delta.Apps), ct);
        if (projectId is { } id)
            await db.Projects.Where(p => p.Id == id).ExecuteUpdateAsync(s => s
                .SetProperty(p => p.UsedMemoryMiB, p => p.UsedMemoryMiB + delta.MemoryMiB)
                .SetProperty(p => p.UsedCpuMillicores, p => p.UsedCpuMillicores + delta.CpuMillicores)
                .SetProperty(p => p.UsedInstances, p => p.UsedInstances + delta.Instances)
                .SetProperty(p => p.UsedApps, p => p.UsedApps + delta.Apps), ct);
    }

    /// <summary>
    /// Recomputes every counter of a team from its apps, under the team lock; returns whether any was
    /// off. The housekeeping job runs it for every team, so a counter can never stay wrong.
    /// </summary>
    public async Task<bool> RecomputeAsync(Guid teamId, CancellationToken ct)
    {
        await using var tx = await BeginAdmissionAsync(teamId, ct);
        var perProject = await db.Apps.Where(a => a.Project!.TeamId == teamId).GroupBy(a => a.ProjectId).Select(g => new
        {
            ProjectId = g.Key,
            Memory = g.Sum(a => (long)a.Instances * a.MemoryMiB),
            Cpu = g.Sum(a => (long)a.Instances * a.CpuMillicores),
            Instances = g.Sum(a => (long)a.Instances),
            Apps = g.LongCount(),
        }).ToDictionaryAsync(x => x.ProjectId, ct);
        var drift = false;
        var projects = await db.Projects.Where(p => p.TeamId == teamId).ToListAsync(ct);
        foreach (var p in projects)
        {
            var u = perProject.GetValueOrDefault(p.Id);
            var (m, c, i, a) = u is null ? (0L, 0L, 0L, 0L) : (u.Memory, u.Cpu, u.Instances, u.Apps);
            drift |= (p.UsedMemoryMiB, p.UsedCpuMillicores, p.UsedInstances, p.UsedApps) != (m, c, i, a);
            (p.UsedMemoryMiB, p.UsedCpuMillicores, p.UsedInstances, p.UsedApps) = (m, c, i, a);
        }
        var team = await db.Teams.FirstAsync(t => t.Id == teamId, ct);
        var total = (projects.Sum(p => p.UsedMemoryMiB), projects.Sum(p => p.UsedCpuMillicores), projects.Sum(p => p.UsedInstances), projects.Sum(p => p.UsedApps));
        drift |= (team.UsedMemoryMiB, team.UsedCpuMillicores, team.UsedInstances, team.UsedApps) != total;
        (team.UsedMemoryMiB, team.UsedCpuMillicores, team.UsedInstances, team.UsedApps) = total;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return drift;
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
            new(q.RegistryGiB, (registryBytes + Registry.RegistryQuota.GiB - 1) / Registry.RegistryQuota.GiB),
            new(q.ConcurrentBuilds, await db.Builds.CountAsync(b => b.App!.Project!.TeamId == team.Id && b.State == Builds.BuildStates.Running, ct)),
            registryBytes,
            Builds.BuildJob.LimitsOf(q, options.Value.Builds) is var l ? new BuildLimitsResponse(l.MemoryMiB, l.CpuMillicores, l.Pids, l.TimeoutSeconds) : null);
    }

    public async Task<ProjectQuotaResponse> ProjectReportAsync(Project project, CancellationToken ct)
    {
        var used = await ProjectUsageAsync(project.Id, ct);
        var q = project.Quota;
        return new ProjectQuotaResponse(new(q.MemoryMiB, used.MemoryMiB), new(q.CpuMillicores, used.CpuMillicores),
            new(q.Instances, used.Instances), new(q.Apps, used.Apps));
    }
}

/// <summary>An admission transaction: commit it, or dispose it to roll back; either way the gate is released.</summary>
public sealed class Admission(Microsoft.EntityFrameworkCore.Storage.IDbContextTransaction tx, SemaphoreSlim gate) : IAsyncDisposable
{
    public Task CommitAsync(CancellationToken ct) => tx.CommitAsync(ct);

    public Task RollbackAsync(CancellationToken ct) => tx.RollbackAsync(ct);

    public async ValueTask DisposeAsync()
    {
        await tx.DisposeAsync();
        gate.Release();
    }
}

/// <summary>In-process queues of admissions: striped by team (bounded memory whatever the number of teams).</summary>
public sealed class AdmissionGate
{
    private readonly SemaphoreSlim[] _stripes = Enumerable.Range(0, 64).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public SemaphoreSlim For(Guid teamId, bool singleWriter) =>
        singleWriter ? _stripes[0] : _stripes[(teamId.GetHashCode() & int.MaxValue) % _stripes.Length];
}
