using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.NodeAgent.Instances;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Status;

namespace Platform.NodeAgent.Sync;

/// <summary>
/// The node's sync loop (kubelet's syncLoop, Nomad's client): on every new desired state, and at least
/// every second, it diffs the desired instances against the snapshots the workers published and sends
/// each worker its command — remove, update — or starts a worker for an instance new here. It owns the
/// set of workers; each worker owns its instance. Nothing is removed before the first desired state has
/// arrived (a restarted agent keeps what it adopted until the Api has spoken), and neither are images.
/// </summary>
public sealed partial class SyncLoop(IContainerRuntime runtime, UsageSampler usage, TimeProvider clock, ILoggerFactory loggers)
{
    public static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan HousekeepingEvery = TimeSpan.FromSeconds(2);

    private readonly ILogger _log = loggers.CreateLogger<SyncLoop>();
    private readonly ILogger _workerLog = loggers.CreateLogger<InstanceWorker>();
    private readonly Dictionary<Guid, (InstanceWorker Worker, Task Run)> _workers = [];   // the loop's alone
    private readonly Dictionary<Guid, DesiredInstance> _updatesSent = [];   // the loop's alone: a command goes once
    private readonly HashSet<Guid> _removesSent = [];
    // Snapshots by id, each from the worker registered for that id: a finished worker's late publish cannot
    // overwrite the snapshot of a new worker for the same id.
    private readonly ConcurrentDictionary<Guid, (InstanceWorker From, InstanceSnapshot Snapshot)> _snapshots = new();
    private readonly Lock _publishing = new();
    private readonly Signal _wake = new();
    private volatile DesiredState? _desired;
    private readonly TaskCompletionSource _recovered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Raised (from any thread) when an instance's published state changed.</summary>
    public event Action? Changed;

    public long? DesiredRevision => _desired?.Revision;

    /// <summary>Completes once what the previous agent left has been adopted.</summary>
    public Task Recovered => _recovered.Task;

    /// <summary>The desired-state source hands every new snapshot here.</summary>
    public void SetDesired(DesiredState state)
    {
        _desired = state;
        _wake.Set();
    }

    /// <summary>The snapshots of every instance on this node (removed ones drop out).</summary>
    public IReadOnlyCollection<InstanceSnapshot> Snapshots => _snapshots.Values.Select(s => s.Snapshot).Where(s => !s.Removed).ToList();

    public IReadOnlyList<InstanceReport> Reports() => Snapshots
        .Select(s => usage.Of(s.Id) is var (cpu, memory) ? s.Report(cpu, memory) : s.Report(0, 0))
        .OrderBy(r => r.Id).ToList();

    /// <summary>CPU, memory (MiB) and count of the running instances, for heartbeats.</summary>
    public (long CpuMillicores, long MemoryMiB, int Running) Usage()
    {
        var running = Snapshots.Where(s => s.Running).Select(s => usage.Of(s.Id)).ToList();
        return (running.Sum(u => u.CpuMillicores), running.Sum(u => u.MemoryBytes) / (1024 * 1024), running.Count);
    }

    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var found in await runtime.RecoverAsync(ct))
            Launch(publish => InstanceWorker.Adopt(found, runtime, clock, _workerLog, publish), ct);
        _recovered.TrySetResult();
        var lastHousekeeping = DateTime.MinValue;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                Sync(ct);
                var now = clock.GetUtcNow().UtcDateTime;
                if (now - lastHousekeeping >= HousekeepingEvery)
                {
                    lastHousekeeping = now;
                    if (usage.Sample(Snapshots.Where(s => s.Running).Select(s => s.Id).ToList(), now)) Changed?.Invoke();
                    await runtime.HousekeepAsync(now, _desired is not null, ct);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                LogLoopFailed(_log, e.Message);
            }
            try { await _wake.WaitAsync(Tick, clock, ct); }
            catch (OperationCanceledException) { break; }
        }
        await Task.WhenAll(_workers.Values.Select(w => w.Run));
    }

    /// <summary>One pass: forget finished workers, then removes, updates, adds.</summary>
    private void Sync(CancellationToken ct)
    {
        foreach (var (id, w) in _workers.Where(w => w.Value.Run.IsCompleted).ToList())
        {
            lock (_publishing)
            {
                _workers.Remove(id);
                _snapshots.TryRemove(id, out _);   // removed, or its worker failed: a desired one gets a new worker below
            }
            _updatesSent.Remove(id);
            _removesSent.Remove(id);
            usage.Forget(id);
            if (w.Run.IsFaulted) LogWorkerFailed(_log, id, w.Run.Exception!.GetBaseException().Message);
        }
        var desired = _desired;
        if (desired is null) return;   // never tear anything down before the Api has said what it wants
        var observed = _workers.Values.Where(w => !w.Worker.Snapshot.Removing && !_removesSent.Contains(w.Worker.Id))
            .ToDictionary(w => w.Worker.Id, w => _updatesSent.GetValueOrDefault(w.Worker.Id) ?? w.Worker.Snapshot.Desired);
        var busy = _workers.Keys.Where(id => !observed.ContainsKey(id)).ToHashSet();
        var diff = InstanceDiff.Compute(desired.Instances, observed, busy);
        foreach (var id in diff.Removes)
        {
            _workers[id].Worker.Remove();
            _removesSent.Add(id);
        }
        foreach (var d in diff.Updates)
        {
            _workers[d.Id].Worker.Update(d);
            _updatesSent[d.Id] = d;
        }
        foreach (var d in diff.Adds) Launch(publish => InstanceWorker.New(d, runtime, clock, _workerLog, publish), ct);
    }

    private void Launch(Func<Action<InstanceSnapshot>, InstanceWorker> make, CancellationToken ct)
    {
        InstanceWorker? worker = null;
        worker = make(snapshot => Publish(worker!, snapshot));
        lock (_publishing)
        {
            _snapshots[worker.Id] = (worker, worker.Snapshot);
            var run = Task.Run(() => worker.RunAsync(ct), CancellationToken.None);
            _workers[worker.Id] = (worker, run);
            _ = run.ContinueWith(_ => _wake.Set(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);   // forget it soon
        }
        Changed?.Invoke();
    }

    private void Publish(InstanceWorker from, InstanceSnapshot snapshot)
    {
        lock (_publishing)
        {
            if (!_snapshots.TryGetValue(snapshot.Id, out var current) || current.From != from) return;   // a worker already forgotten
            _snapshots[snapshot.Id] = (from, snapshot);
        }
        Changed?.Invoke();
    }

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "Sync step failed: {Reason}")]
    private static partial void LogLoopFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 31, Level = LogLevel.Error, Message = "The worker of instance {Id} failed: {Reason}")]
    private static partial void LogWorkerFailed(ILogger logger, Guid id, string reason);
}
