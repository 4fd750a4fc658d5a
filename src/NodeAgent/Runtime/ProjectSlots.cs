using System.Text.Json;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Each project on this node gets a slot, kept in {DataDir}/projects.json: the slot picks the project's
/// host id range (container root maps to 1,000,000 + slot × 65,536) and its bridge and /24 subnet.
/// Slots are never reused, so a range never passes from one project to another on this node.
/// Two agents on one machine (tests) need different bridge prefixes and subnet bases.
/// </summary>
public sealed class ProjectSlots(string file, string bridgePrefix, int subnetBase = 88)
{
    public const int MaxSlots = 2048;
    public const uint IdRangeSize = 65536;
    private readonly Lock _lock = new();
    private Dictionary<Guid, int>? _slots;

    public int SlotOf(Guid project)
    {
        lock (_lock)
        {
            _slots ??= File.Exists(file) ? JsonSerializer.Deserialize<Dictionary<Guid, int>>(File.ReadAllText(file)) ?? [] : [];
            if (_slots.TryGetValue(project, out var slot)) return slot;
            slot = _slots.Count == 0 ? 0 : _slots.Values.Max() + 1;
            if (slot >= MaxSlots) throw new InvalidOperationException($"this node has no project slot left ({MaxSlots} projects)");
            _slots[project] = slot;
            var temp = file + ".tmp";
            File.WriteAllText(temp, JsonSerializer.Serialize(_slots));
            File.Move(temp, file, overwrite: true);
            return slot;
        }
    }

    public static uint HostIdStart(int slot) => 1_000_000u + (uint)slot * IdRangeSize;

    /// <summary>Bridge {prefix}{slot}, subnet 10.{base + slot / 256}.{slot % 256}.0/24 (8 × 256 slots from the base).</summary>
    public ProjectNetwork NetworkOf(int slot) => new($"{bridgePrefix}{slot}", $"10.{subnetBase + slot / 256}.{slot % 256}.0/24");
}
