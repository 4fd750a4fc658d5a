using Platform.Contracts;

namespace Platform.NodeAgent.Sync;

/// <summary>
/// Desired against observed, by set difference (as Nomad's client diffs allocations): what to remove
/// (observed, no longer desired), what to update (both, but it should run something else) and what to
/// add (desired, not observed). Applied in that order: removes first free ports, memory and slots for
/// what follows. Pure: no clock, no I/O.
/// </summary>
public sealed record InstanceDiff(IReadOnlyList<Guid> Removes, IReadOnlyList<DesiredInstance> Updates, IReadOnlyList<DesiredInstance> Adds)
{
    public bool IsEmpty => Removes.Count == 0 && Updates.Count == 0 && Adds.Count == 0;

    /// <param name="desired">The Api's snapshot for this node.</param>
    /// <param name="observed">What the workers run, by instance id (workers being removed left out).</param>
    /// <param name="busy">Ids whose worker is still being removed: not added again until it is gone.</param>
    public static InstanceDiff Compute(IReadOnlyList<DesiredInstance> desired, IReadOnlyDictionary<Guid, DesiredInstance> observed, IReadOnlySet<Guid>? busy = null)
    {
        var wanted = new Dictionary<Guid, DesiredInstance>();
        foreach (var d in desired) wanted.TryAdd(d.Id, d);   // a duplicate id in a snapshot counts once
        var removes = observed.Keys.Where(id => !wanted.ContainsKey(id)).Order().ToList();
        var updates = new List<DesiredInstance>();
        var adds = new List<DesiredInstance>();
        foreach (var (id, d) in wanted)
        {
            if (observed.TryGetValue(id, out var running))
            {
                if (!Same(running, d)) updates.Add(d);
            }
            else if (busy is null || !busy.Contains(id))
            {
                adds.Add(d);
            }
        }
        return new InstanceDiff(removes, updates.OrderBy(d => d.Id).ToList(), adds.OrderBy(d => d.Id).ToList());
    }

    /// <summary>Whether two descriptions of one instance are the same in all (run, probes, grace period).</summary>
    public static bool Same(DesiredInstance a, DesiredInstance b) =>
        SameRun(a, b) && a.Readiness == b.Readiness && a.Liveness == b.Liveness && a.StopGraceSeconds == b.StopGraceSeconds;

    /// <summary>Whether two descriptions of one instance run the same thing (the environment compared by content).</summary>
    public static bool SameRun(DesiredInstance a, DesiredInstance b) =>
        a.Id == b.Id && a.Team == b.Team && a.Project == b.Project && a.ProjectId == b.ProjectId && a.App == b.App
        && a.Generation == b.Generation && a.Image == b.Image && a.Port == b.Port && a.MemoryMiB == b.MemoryMiB
        && a.CpuMillicores == b.CpuMillicores
        && a.Env.Count == b.Env.Count && a.Env.All(e => b.Env.TryGetValue(e.Key, out var v) && v == e.Value);
}
