using Platform.Api.Scheduling;

namespace Platform.Api.Tests.Scheduling;

public sealed class SchedulerTests
{
    private static List<NodeCapacity> Nodes(int n, long memory = 8192, long cpu = 4000) =>
        Enumerable.Range(0, n).Select(i => new NodeCapacity($"node-{i}", memory, cpu)).ToList();

    [Fact]
    public void Replicas_of_one_app_spread_across_nodes()
    {
        var nodes = Nodes(3);
        var app = Guid.NewGuid();
        var (placed, unplaced) = new Scheduler(nodes, new Random(1)).Place([new PlacementRequest(app, 6, 256, 100)]);
        Assert.Empty(unplaced);
        Assert.All(placed.GroupBy(p => p.Node), g => Assert.Equal(2, g.Count()));
        Assert.Equal(3, placed.Select(p => p.Node).Distinct().Count());
    }

    [Fact]
    public void Memory_and_cpu_capacity_are_respected_and_what_does_not_fit_is_reported()
    {
        var nodes = Nodes(2, memory: 1024, cpu: 1000);
        var (placed, unplaced) = new Scheduler(nodes, new Random(1)).Place(
        [
            new PlacementRequest(Guid.NewGuid(), 5, 512, 100),     // 4 fit by memory
            new PlacementRequest(Guid.NewGuid(), 1, 10, 2000),     // fits nowhere by CPU
        ]);
        Assert.Equal(4, placed.Count);
        Assert.Equal([1, 1], unplaced.Select(u => u.Count));
        Assert.All(nodes, n => Assert.True(n.UsedMemoryMiB <= n.AllocatableMemoryMiB));
    }

    [Fact]
    public void Instances_already_running_count_against_capacity_and_spread()
    {
        var nodes = Nodes(2, memory: 1024);
        var app = Guid.NewGuid();
        nodes[0].Add(app, 512, 100);
        var (placed, _) = new Scheduler(nodes, new Random(1)).Place([new PlacementRequest(app, 1, 512, 100)]);
        Assert.Equal("node-1", placed.Single().Node);
    }

    [Fact]
    public void In_a_large_nearly_full_cluster_the_one_node_with_room_is_found()
    {
        var nodes = Nodes(1000, memory: 1024);
        foreach (var n in nodes.Skip(1)) n.Add(Guid.NewGuid(), 1024, 0);
        var (placed, unplaced) = new Scheduler(nodes, new Random(1)).Place([new PlacementRequest(Guid.NewGuid(), 1, 512, 100)]);
        Assert.Empty(unplaced);
        Assert.Equal("node-0", placed.Single().Node);
    }

    [Fact]
    public void Sampling_still_spreads_replicas_in_a_large_cluster()
    {
        var nodes = Nodes(5000);
        var app = Guid.NewGuid();
        var (placed, _) = new Scheduler(nodes, new Random(7)).Place([new PlacementRequest(app, 20, 256, 100)]);
        Assert.Equal(20, placed.Select(p => p.Node).Distinct().Count());
    }
}
