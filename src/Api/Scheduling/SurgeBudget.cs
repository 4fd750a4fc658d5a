using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Scheduling;

/// <summary>
/// The room a team's quota (and each project's share of it) leaves for rollouts' surges. Admission charges an app
/// what it wants (instances × memory and CPU); during a rollout it also holds old instances beside new ones, so an
/// app occupies, per dimension, the larger of what it wants and what it has placed. A surge may grow that only into
/// what the limits leave: <see cref="Fit"/> says how many new instances of an app the quota lets a pass place,
/// <see cref="Place"/> books them. Loaded once per team per placement pass, inside the pass's transaction.
/// </summary>
public sealed class SurgeBudget
{
    private sealed class Footprint
    {
        public Guid Project;
        public long WantMemory, WantCpu, WantCount, PlacedMemory, PlacedCpu, PlacedCount;
        public long Memory => Math.Max(WantMemory, PlacedMemory);
        public long Cpu => Math.Max(WantCpu, PlacedCpu);
        public long Count => Math.Max(WantCount, PlacedCount);
    }

    private sealed record Limits(long? Memory, long? Cpu, long? Count);

    private readonly Dictionary<Guid, Footprint> _apps;
    private readonly Limits _team;
    private readonly Dictionary<Guid, Limits> _projects;

    private SurgeBudget(Dictionary<Guid, Footprint> apps, Limits team, Dictionary<Guid, Limits> projects) =>
        (_apps, _team, _projects) = (apps, team, projects);

    public static async Task<SurgeBudget> LoadAsync(PlatformDbContext db, Guid teamId, CancellationToken ct)
    {
        var team = await db.Teams.AsNoTracking().Where(t => t.Id == teamId)
            .Select(t => new { t.Quota.MemoryMiB, t.Quota.CpuMillicores, t.Quota.Instances }).FirstAsync(ct);
        var projects = await db.Projects.AsNoTracking().Where(p => p.TeamId == teamId)
            .Select(p => new { p.Id, p.Quota.MemoryMiB, p.Quota.CpuMillicores, p.Quota.Instances }).ToListAsync(ct);
        var apps = await db.Apps.AsNoTracking().Where(a => a.Project!.TeamId == teamId)
            .Select(a => new { a.Id, a.ProjectId, a.Instances, a.MemoryMiB, a.CpuMillicores }).ToListAsync(ct);
        var placed = await db.Instances.AsNoTracking().Where(i => i.App!.Project!.TeamId == teamId).GroupBy(i => i.AppId)
            .Select(g => new { App = g.Key, Count = g.Count(), Memory = g.Sum(i => (long)i.MemoryMiB), Cpu = g.Sum(i => (long)i.CpuMillicores) })
            .ToDictionaryAsync(g => g.App, ct);
        var footprints = apps.ToDictionary(a => a.Id, a =>
        {
            var p = placed.GetValueOrDefault(a.Id);
            return new Footprint
            {
                Project = a.ProjectId, WantCount = a.Instances, WantMemory = (long)a.Instances * a.MemoryMiB, WantCpu = (long)a.Instances * a.CpuMillicores,
                PlacedCount = p?.Count ?? 0, PlacedMemory = p?.Memory ?? 0, PlacedCpu = p?.Cpu ?? 0,
            };
        });
        return new SurgeBudget(footprints, new Limits(team.MemoryMiB, team.CpuMillicores, team.Instances),
            projects.ToDictionary(p => p.Id, p => new Limits(p.MemoryMiB, p.CpuMillicores, p.Instances)));
    }

    /// <summary>How many of <paramref name="wanted"/> new instances of <paramref name="app"/> (each of the given size) the team's and its project's limits leave room for.</summary>
    public int Fit(Guid app, int wanted, long memoryMiB, long cpuMillicores)
    {
        if (!_apps.TryGetValue(app, out var me)) return 0;
        for (var n = wanted; n > 0; n--)
            if (Fits(me, n, memoryMiB, cpuMillicores)) return n;
        return 0;
    }

    /// <summary>Books <paramref name="count"/> new instances of <paramref name="app"/> placed by this pass.</summary>
    public void Place(Guid app, int count, long memoryMiB, long cpuMillicores)
    {
        if (!_apps.TryGetValue(app, out var me)) return;
        me.PlacedCount += count;
        me.PlacedMemory += count * memoryMiB;
        me.PlacedCpu += count * cpuMillicores;
    }

    private bool Fits(Footprint me, int n, long memoryMiB, long cpuMillicores)
    {
        // What the app would occupy with n more, against what it occupies now: the growth every limit must still hold.
        var memory = Math.Max(me.WantMemory, me.PlacedMemory + n * memoryMiB) - me.Memory;
        var cpu = Math.Max(me.WantCpu, me.PlacedCpu + n * cpuMillicores) - me.Cpu;
        var count = Math.Max(me.WantCount, me.PlacedCount + n) - me.Count;
        bool Within(Limits limits, IEnumerable<Footprint> apps)
        {
            var all = apps.ToList();
            return (limits.Memory is not { } m || all.Sum(a => a.Memory) + memory <= m)
                && (limits.Cpu is not { } c || all.Sum(a => a.Cpu) + cpu <= c)
                && (limits.Count is not { } i || all.Sum(a => a.Count) + count <= i);
        }
        return Within(_team, _apps.Values)
            && (!_projects.TryGetValue(me.Project, out var project) || Within(project, _apps.Values.Where(a => a.Project == me.Project)));
    }
}
