using System.Text.Json;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Each project with instances on this node holds a slot, kept in {DataDir}/projects.json: the slot picks
/// the project's host id range (container root maps to 1,000,000 + slot × 65,536) and its bridge and /24
/// subnet. A slot is held while any instance of the project is on the node (started, exited or being
/// set up) and freed when the last one has been torn down, so a node that sees many projects over time
/// never runs out; a new project takes the lowest free slot.
/// Reuse passes a range and a subnet from one project to the next, which is safe because of what the
/// teardown guarantees before the release: the old project's processes are dead (runc killed them and its
/// cgroup is gone), its name-spaces and CNI addresses are deleted and its overlay upper directories
/// removed with their bundles; what stays owned by the range is the id-shifted copies of image layers,
/// which are read-only lower layers with the image's own content, the same for any project.
/// Two agents on one machine (tests) need different bridge prefixes and subnet bases.
/// </summary>
public sealed class ProjectSlots(string file, string bridgePrefix, int subnetBase = 88, int maxSlots = ProjectSlots.MaxSlots)
{
    public const int MaxSlots = 2048;
    public const uint IdRangeSize = 65536;
    private readonly Lock _lock = new();
    private Dictionary<Guid, int>? _slots;
    // In memory only: which instances hold each project's slot (rebuilt from the instance records at start).
    private readonly Dictionary<Guid, HashSet<Guid>> _holders = [];

    /// <summary>
    /// The project's slot, held for <paramref name="instance"/> until <see cref="Release"/>. With
    /// <paramref name="recorded"/> (an instance adopted at start), the slot its record names.
    /// </summary>
    public int Acquire(Guid project, Guid instance, int? recorded = null)
    {
        lock (_lock)
        {
            var slots = Load();
            if (!slots.TryGetValue(project, out var slot) || recorded is { } r && r != slot)
            {
                slot = recorded ?? Enumerable.Range(0, maxSlots).Except(slots.Values).DefaultIfEmpty(-1).First();
                if (slot < 0)
                    throw new InvalidOperationException($"this node has no project slot left: {maxSlots} projects have instances here");
                slots[project] = slot;
                Save(slots);
            }
            if (!_holders.TryGetValue(project, out var holders)) _holders[project] = holders = [];
            holders.Add(instance);
            return slot;
        }
    }

    /// <summary>
    /// <paramref name="instance"/> is torn down and gone: returns true when it was the project's last one
    /// here, and the slot is now free (the caller removes the project's bridge).
    /// </summary>
    public bool Release(Guid project, Guid instance)
    {
        lock (_lock)
        {
            if (_holders.TryGetValue(project, out var holders) && holders.Remove(instance) && holders.Count > 0) return false;
            _holders.Remove(project);
            if (Load().Remove(project)) Save(_slots!);
            return true;
        }
    }

    /// <summary>After adopting what the last run left: frees the slots no instance holds (such as those of projects removed while the agent was down).</summary>
    public void ReleaseUnheld()
    {
        lock (_lock)
        {
            var slots = Load();
            var unheld = slots.Keys.Where(p => !_holders.ContainsKey(p)).ToList();
            foreach (var project in unheld) slots.Remove(project);
            if (unheld.Count > 0) Save(slots);
        }
    }

    private Dictionary<Guid, int> Load() =>
        _slots ??= File.Exists(file) ? JsonSerializer.Deserialize<Dictionary<Guid, int>>(File.ReadAllText(file)) ?? [] : [];

    private void Save(Dictionary<Guid, int> slots)
    {
        var temp = file + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(slots));
        File.Move(temp, file, overwrite: true);
    }

    public static uint HostIdStart(int slot) => 1_000_000u + (uint)slot * IdRangeSize;

    /// <summary>Bridge {prefix}{slot}, subnet 10.{base + slot / 256}.{slot % 256}.0/24 (8 × 256 slots from the base).</summary>
    public ProjectNetwork NetworkOf(int slot) => new($"{bridgePrefix}{slot}", $"10.{subnetBase + slot / 256}.{slot % 256}.0/24");
}
