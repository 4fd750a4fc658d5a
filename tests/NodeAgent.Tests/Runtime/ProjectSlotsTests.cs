using System.Collections.Concurrent;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Runtime;

/// <summary>
/// Project slots (host id range, bridge, subnet) as the runtime takes and frees them: a node that runs
/// far more projects over time than it has slots never runs out, and two projects that are on the node
/// at the same time never share one.
/// </summary>
public sealed class ProjectSlotsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-slots-" + Guid.NewGuid().ToString("N")[..8]);

    public ProjectSlotsTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File => Path.Combine(_dir, "projects.json");

    private ProjectSlots Slots(int max = ProjectSlots.MaxSlots) => new(File, "pt", maxSlots: max);

    [Fact]
    public void Creating_and_removing_three_times_more_projects_than_there_are_slots_never_runs_out()
    {
        var slots = Slots();
        var live = new Queue<(Guid Project, Guid Instance, int Slot)>();
        var used = new HashSet<int>();
        for (var i = 0; i < 3 * ProjectSlots.MaxSlots; i++)
        {
            var (project, instance) = (Guid.NewGuid(), Guid.NewGuid());
            var slot = slots.Acquire(project, instance);
            Assert.InRange(slot, 0, ProjectSlots.MaxSlots - 1);
            Assert.DoesNotContain(slot, live.Select(l => l.Slot));   // the positive control: live projects stay apart
            live.Enqueue((project, instance, slot));
            used.Add(slot);
            if (live.Count > 5)
            {
                var gone = live.Dequeue();
                Assert.True(slots.Release(gone.Project, gone.Instance));
            }
        }
        // Six live at most, so the lowest six slots served every project.
        Assert.Equal(Enumerable.Range(0, 6).ToHashSet(), used);
    }

    [Fact]
    public void A_full_node_says_so_and_a_freed_slot_is_taken_by_the_next_project()
    {
        var slots = Slots(max: 3);
        var held = Enumerable.Range(0, 3).Select(_ => (Project: Guid.NewGuid(), Instance: Guid.NewGuid())).ToList();
        Assert.Equal([0, 1, 2], held.Select(h => slots.Acquire(h.Project, h.Instance)));
        var full = Assert.Throws<InvalidOperationException>(() => slots.Acquire(Guid.NewGuid(), Guid.NewGuid()));
        Assert.Contains("no project slot left", full.Message);

        Assert.True(slots.Release(held[1].Project, held[1].Instance));
        Assert.Equal(1, slots.Acquire(Guid.NewGuid(), Guid.NewGuid()));
    }

    [Fact]
    public void A_slot_stays_with_its_project_while_any_of_its_instances_is_on_the_node()
    {
        var slots = Slots();
        var (project, first, second) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var slot = slots.Acquire(project, first);
        Assert.Equal(slot, slots.Acquire(project, second));
        Assert.False(slots.Release(project, first));
        Assert.NotEqual(slot, slots.Acquire(Guid.NewGuid(), Guid.NewGuid()));   // still the project's
        Assert.True(slots.Release(project, second));
        Assert.Equal(slot, slots.Acquire(Guid.NewGuid(), Guid.NewGuid()));      // free now
    }

    [Fact]
    public void After_a_restart_adopted_instances_keep_their_slots_and_unheld_ones_are_freed()
    {
        var before = Slots();
        var (kept, gone) = ((Project: Guid.NewGuid(), Instance: Guid.NewGuid()), (Project: Guid.NewGuid(), Instance: Guid.NewGuid()));
        var keptSlot = before.Acquire(kept.Project, kept.Instance);
        var goneSlot = before.Acquire(gone.Project, gone.Instance);

        // The next run adopts only the instance whose record is still on disk.
        var after = Slots();
        Assert.Equal(keptSlot, after.Acquire(kept.Project, kept.Instance, recorded: keptSlot));
        after.ReleaseUnheld();
        Assert.Equal(goneSlot, after.Acquire(Guid.NewGuid(), Guid.NewGuid()));
        Assert.Equal(keptSlot, after.Acquire(kept.Project, Guid.NewGuid()));
    }

    [Fact]
    public async Task Projects_coming_and_going_concurrently_never_share_a_slot()
    {
        var slots = Slots(max: 64);
        var owners = new ConcurrentDictionary<int, Guid>();
        var clashes = new ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 300; i++)
            {
                var (project, instance) = (Guid.NewGuid(), Guid.NewGuid());
                var slot = slots.Acquire(project, instance);
                if (!owners.TryAdd(slot, project)) clashes.Add($"slot {slot} given to two live projects");
                owners.TryRemove(new KeyValuePair<int, Guid>(slot, project));
                slots.Release(project, instance);
            }
        })));
        Assert.Empty(clashes);
    }
}
