using System.Collections.Concurrent;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Status;

/// <summary>CPU (millicores over the last interval) and memory of every running instance, from the runtime (its cgroup).</summary>
public sealed class UsageSampler(IContainerRuntime runtime)
{
    private sealed record Reading(long CpuNanos, DateTime At, long CpuMillicores, long MemoryBytes);

    private readonly ConcurrentDictionary<Guid, Reading> _last = new();

    /// <summary>Reads every running instance's cgroup; true when a figure moved.</summary>
    public bool Sample(IReadOnlyCollection<Guid> running, DateTime now)
    {
        var moved = false;
        foreach (var id in _last.Keys.Except(running)) moved |= _last.TryRemove(id, out _);
        foreach (var id in running)
        {
            if (runtime.Usage(id) is not { } u) continue;
            var cpu = _last.TryGetValue(id, out var last) && now > last.At
                ? Math.Max(0, (u.CpuNanos - last.CpuNanos) * 1000 / ((now - last.At).Ticks * 100))
                : 0;
            moved |= !_last.TryGetValue(id, out var before) || before.CpuMillicores != cpu || before.MemoryBytes != u.MemoryBytes;
            _last[id] = new Reading(u.CpuNanos, now, cpu, u.MemoryBytes);
        }
        return moved;
    }

    public (long CpuMillicores, long MemoryBytes) Of(Guid id) => _last.TryGetValue(id, out var s) ? (s.CpuMillicores, s.MemoryBytes) : (0, 0);

    public void Forget(Guid id) => _last.TryRemove(id, out _);
}
