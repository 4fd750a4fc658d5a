using Platform.Contracts;
using Platform.NodeAgent.Sync;
using Platform.NodeAgent.Tests.Instances;

namespace Platform.NodeAgent.Tests.Sync;

public sealed class InstanceDiffTests
{
    private static Dictionary<Guid, DesiredInstance> Observed(params DesiredInstance[] running) => running.ToDictionary(d => d.Id);

    [Fact]
    public void What_is_desired_and_missing_is_added_what_runs_and_is_not_desired_is_removed()
    {
        var (keep, add, drop) = (Desired.Of("keep"), Desired.Of("add"), Desired.Of("drop"));
        var diff = InstanceDiff.Compute([keep, add], Observed(keep, drop));
        Assert.Equal([drop.Id], diff.Removes);
        Assert.Empty(diff.Updates);
        Assert.Equal([add], diff.Adds);
    }

    [Fact]
    public void A_desired_instance_that_runs_something_else_is_an_update_and_the_same_content_is_not()
    {
        var running = Desired.Of("web", env: new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" });
        var same = running with { Env = new Dictionary<string, string> { ["B"] = "2", ["A"] = "1" } };
        Assert.True(InstanceDiff.Compute([same], Observed(running)).IsEmpty);

        foreach (var changed in new[]
                 {
                     running with { Env = new Dictionary<string, string> { ["A"] = "1" } },
                     running with { Env = new Dictionary<string, string> { ["A"] = "1", ["B"] = "3" } },
                     running with { Image = "t/p/web@sha256:2" }, running with { MemoryMiB = 128 }, running with { CpuMillicores = 200 },
                     running with { Port = 9090 }, running with { Generation = 2 },
                 })
        {
            var diff = InstanceDiff.Compute([changed], Observed(running));
            Assert.Equal([changed], diff.Updates);
            Assert.Empty(diff.Adds);
            Assert.Empty(diff.Removes);
        }
    }

    [Fact]
    public void An_empty_desired_state_removes_everything_and_nothing_observed_adds_everything()
    {
        var (a, b) = (Desired.Of("a"), Desired.Of("b"));
        Assert.Equal(new[] { a.Id, b.Id }.Order(), InstanceDiff.Compute([], Observed(a, b)).Removes);
        Assert.Equal(new[] { a, b }.OrderBy(d => d.Id), InstanceDiff.Compute([a, b], Observed()).Adds);
    }

    [Fact]
    public void An_instance_still_being_removed_is_not_added_again_until_it_is_gone()
    {
        var a = Desired.Of("a");
        Assert.Empty(InstanceDiff.Compute([a], Observed(), busy: new HashSet<Guid> { a.Id }).Adds);
        Assert.Equal([a], InstanceDiff.Compute([a], Observed(), busy: new HashSet<Guid>()).Adds);
    }

    [Fact]
    public void A_snapshot_naming_one_id_twice_counts_it_once()
    {
        var a = Desired.Of("a");
        Assert.Equal([a], InstanceDiff.Compute([a, a with { App = "again" }], Observed()).Adds);
    }
}
