namespace Platform.Api.Scheduling;

/// <summary>A node as the scheduler sees it: what it can still take, and which apps' replicas it runs.</summary>
public sealed class NodeCapacity(string name, long allocatableMemoryMiB, long allocatableCpuMillicores)
{
    public string Name { get; } = name;
    public long AllocatableMemoryMiB { get; } = allocatableMemoryMiB;
    public long AllocatableCpuMillicores { get; } = allocatableCpuMillicores;
    public long UsedMemoryMiB { get; private set; }
    public long UsedCpuMillicores { get; private set; }
    private readonly Dictionary<Guid, int> _replicas = [];

    public bool Fits(long memoryMiB, long cpuMillicores) =>
        UsedMemoryMiB + memoryMiB <= AllocatableMemoryMiB && UsedCpuMillicores + cpuMillicores <= AllocatableCpuMillicores;

    public int ReplicasOf(Guid app) => _replicas.GetValueOrDefault(app);

    /// <summary>Records what other apps' instances already take here.</summary>
    public void AddUsage(long memoryMiB, long cpuMillicores)
    {
        UsedMemoryMiB += memoryMiB;
        UsedCpuMillicores += cpuMillicores;
    }

    /// <summary>Records a replica of <paramref name="app"/> whose usage is already counted.</summary>
    public void CountReplica(Guid app) => _replicas[app] = ReplicasOf(app) + 1;

    /// <summary>Records an instance already running here or just placed.</summary>
    public void Add(Guid app, long memoryMiB, long cpuMillicores)
    {
        UsedMemoryMiB += memoryMiB;
        UsedCpuMillicores += cpuMillicores;
        _replicas[app] = ReplicasOf(app) + 1;
    }

    public double FreeFraction =>
        Math.Min((double)(AllocatableMemoryMiB - UsedMemoryMiB) / Math.Max(1, AllocatableMemoryMiB),
                 (double)(AllocatableCpuMillicores - UsedCpuMillicores) / Math.Max(1, AllocatableCpuMillicores));
}

/// <summary>Instances of one app waiting for a node.</summary>
public sealed record PlacementRequest(Guid App, int Count, long MemoryMiB, long CpuMillicores);

public sealed record Placement(Guid App, string Node);

/// <summary>
/// Scheduler v1: places instances on Ready nodes with room for their memory and CPU, spreading the
/// replicas of one app across nodes (fewest replicas of that app first), then preferring the least
/// loaded node. As Nomad and Sparrow do, it scores a bounded random sample of nodes instead of all of
/// them ("power of k choices"), so a placement costs O(k) whatever the cluster size; when the sample
/// finds no node with room it falls back to a full scan before declaring an instance unplaceable.
/// </summary>
public sealed class Scheduler(IReadOnlyList<NodeCapacity> nodes, Random random)
{
    /// <summary>How many nodes one placement scores: enough to spread well, few enough to stay cheap.</summary>
    public int SampleSize { get; init; } = Math.Max(8, 2 * (int)Math.Ceiling(Math.Log2(Math.Max(2, nodes.Count))));

    public (List<Placement> Placed, List<PlacementRequest> Unplaced) Place(IEnumerable<PlacementRequest> requests)
    {
        var placed = new List<Placement>();
        var unplaced = new List<PlacementRequest>();
        foreach (var request in requests)
        {
            var left = 0;
            for (var i = 0; i < request.Count; i++)
            {
                var node = Pick(request);
                if (node is null) { left = request.Count - i; break; }
                node.Add(request.App, request.MemoryMiB, request.CpuMillicores);
                placed.Add(new Placement(request.App, node.Name));
            }
            if (left > 0) unplaced.Add(request with { Count = left });
        }
        return (placed, unplaced);
    }

    private NodeCapacity? Pick(PlacementRequest r)
    {
        if (nodes.Count == 0) return null;
        NodeCapacity? best = null;
        if (nodes.Count <= SampleSize)
        {
            foreach (var n in nodes) best = Better(best, n, r);
            return best;
        }
        for (var i = 0; i < SampleSize; i++)
            best = Better(best, nodes[random.Next(nodes.Count)], r);
        if (best is not null) return best;
        foreach (var n in nodes) best = Better(best, n, r);   // a full cluster: make sure nothing fits before giving up
        return best;
    }

    private static NodeCapacity? Better(NodeCapacity? best, NodeCapacity candidate, PlacementRequest r)
    {
        if (!candidate.Fits(r.MemoryMiB, r.CpuMillicores)) return best;
        if (best is null) return candidate;
        var (a, b) = (candidate.ReplicasOf(r.App), best.ReplicasOf(r.App));
        if (a != b) return a < b ? candidate : best;
        return candidate.FreeFraction > best.FreeFraction ? candidate : best;
    }
}
