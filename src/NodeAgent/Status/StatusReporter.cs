using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.NodeAgent.ControlPlane;
using Platform.NodeAgent.Sync;

namespace Platform.NodeAgent.Status;

/// <summary>
/// Sends what the instances' workers published to the Api. State changes go at once (a burst gathered
/// for 50 ms); usage (CPU, memory) that moved by more than a tenth goes every 10 s; everything every 60 s
/// (a full resync). A busy node does not rewrite its rows every few seconds.
/// </summary>
public sealed class StatusReporter(ControlPlaneClient api, SyncLoop sync, TimeProvider clock, ILogger<StatusReporter> log)
{
    public static readonly TimeSpan Gather = TimeSpan.FromMilliseconds(50);
    public static readonly TimeSpan UsageEvery = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan FullEvery = TimeSpan.FromSeconds(60);

    private readonly Signal _now = new();

    /// <summary>An instance's state changed: report soon.</summary>
    public void Poke() => _now.Set();

    public async Task RunAsync(CancellationToken ct)
    {
        var sent = new Dictionary<Guid, InstanceReport>();
        var (lastFull, lastUsage) = (DateTime.MinValue, DateTime.MinValue);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _now.WaitAsync(TimeSpan.FromSeconds(2), clock, ct);
                await Task.Delay(Gather, clock, ct);   // gather a burst of changes into one report
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var now = clock.GetUtcNow().UtcDateTime;
            var reports = sync.Reports();
            var full = now - lastFull > FullEvery;
            var usage = now - lastUsage > UsageEvery;
            var changed = Changed(reports, sent, full, usage);
            if (usage) lastUsage = now;
            if (changed.Count == 0) continue;
            var (ok, _) = await Retry.RunAsync(async t => { await api.ReportAsync(changed, t); return true; }, api.Reset, clock, log, ct);
            if (!ok) return;
            if (full) { lastFull = now; sent.Clear(); }
            foreach (var r in changed) sent[r.Id] = r;
        }
    }

    /// <summary>What to send: everything on a full resync; otherwise new states, and usage that moved when it is usage's turn.</summary>
    public static IReadOnlyList<InstanceReport> Changed(IReadOnlyList<InstanceReport> reports, IReadOnlyDictionary<Guid, InstanceReport> sent, bool full, bool usage)
    {
        if (full) return reports;
        static InstanceReport StateOf(InstanceReport r) => r with { UsedCpuMillicores = 0, UsedMemoryBytes = 0 };
        static bool Moved(long before, long now) => Math.Abs(now - before) > Math.Max(before, now) / 10;
        return reports.Where(r => !sent.TryGetValue(r.Id, out var s) || StateOf(s) != StateOf(r)
            || usage && (Moved(s.UsedCpuMillicores, r.UsedCpuMillicores) || Moved(s.UsedMemoryBytes, r.UsedMemoryBytes))).ToList();
    }
}
