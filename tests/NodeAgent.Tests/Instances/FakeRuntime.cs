using System.Collections.Concurrent;
using System.Threading.Channels;
using Platform.Contracts;
using Platform.NodeAgent.Instances;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Instances;

/// <summary>
/// An in-memory <see cref="IContainerRuntime"/>: containers are completion sources a test ends with
/// <see cref="Exit"/>; every call is recorded; starts and removals can be made to fail.
/// </summary>
public sealed class FakeRuntime(TimeProvider clock) : IContainerRuntime
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<ExitInfo>> _running = new();
    private int _port = 30000;

    public List<RecoveredInstance> Left { get; } = [];
    public ConcurrentQueue<string> Calls { get; } = new();
    /// <summary>Starts that fail, in order, before starts succeed again.</summary>
    public ConcurrentQueue<Exception> StartFailures { get; } = new();
    public ConcurrentQueue<Exception> RemoveFailures { get; } = new();

    public int Count(string call) => Calls.Count(c => c == call);

    /// <summary>What each start was asked to run, last first.</summary>
    public ConcurrentStack<DesiredInstance> Started { get; } = new();

    public bool IsRunning(Guid id) => _running.TryGetValue(id, out var c) && !c.Task.IsCompleted;

    /// <summary>The container of <paramref name="id"/> ends with <paramref name="code"/>.</summary>
    public void Exit(Guid id, int code, bool oom = false) => _running[id].TrySetResult(new ExitInfo(code, oom));

    public Task<IReadOnlyList<RecoveredInstance>> RecoverAsync(CancellationToken ct)
    {
        foreach (var r in Left.Where(r => r.State == RecoveredState.Running))
            _running[r.Desired.Id] = new TaskCompletionSource<ExitInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        return Task.FromResult<IReadOnlyList<RecoveredInstance>>(Left);
    }

    public Task<StartedContainer> StartAsync(DesiredInstance desired, CancellationToken ct)
    {
        Calls.Enqueue("start " + desired.App);
        Started.Push(desired);
        if (StartFailures.TryDequeue(out var failure)) return Task.FromException<StartedContainer>(failure);
        _running[desired.Id] = new TaskCompletionSource<ExitInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        return Task.FromResult(new StartedContainer(Interlocked.Increment(ref _port), clock.GetUtcNow().UtcDateTime));
    }

    public Task<ExitInfo> WaitForExitAsync(Guid id, CancellationToken ct) =>
        _running.TryGetValue(id, out var c) ? c.Task.WaitAsync(ct) : Task.FromException<ExitInfo>(new InvalidOperationException("no such container"));

    public Task RemoveAsync(Guid id, CancellationToken ct)
    {
        var app = _running.ContainsKey(id) ? "" : "(none) ";
        Calls.Enqueue("remove " + app + id.ToString("N")[..4]);
        if (RemoveFailures.TryDequeue(out var failure)) return Task.FromException(failure);
        if (_running.TryRemove(id, out var c)) c.TrySetResult(new ExitInfo(137, false));
        return Task.CompletedTask;
    }

    /// <summary>What probes find, per instance: a test sets it; without one a probe passes.</summary>
    public ConcurrentDictionary<Guid, ProbeResult> ProbeAnswers { get; } = new();

    public Task<ProbeResult> ProbeAsync(Guid id, ProbeSpec probe, CancellationToken ct)
    {
        Calls.Enqueue("probe " + probe.Type);
        return Task.FromResult(ProbeAnswers.TryGetValue(id, out var r) ? r : new ProbeResult(true, "ok"));
    }

    public Task KillAsync(Guid id, TimeSpan grace, CancellationToken ct)
    {
        Calls.Enqueue("kill " + id.ToString("N")[..4]);
        if (_running.TryGetValue(id, out var c)) c.TrySetResult(new ExitInfo(143, false));
        return Task.CompletedTask;
    }

    public (long CpuNanos, long MemoryBytes)? Usage(Guid id) => IsRunning(id) ? (1_000_000, 4 << 20) : null;

    /// <summary>Log folders the control server serves, per instance (none unless a test sets one).</summary>
    public ConcurrentDictionary<Guid, string> LogFolders { get; } = new();

    public string? LogFolderOf(Guid id) => LogFolders.TryGetValue(id, out var folder) ? folder : null;

    public Task HousekeepAsync(DateTime now, bool desiredKnown, CancellationToken ct)
    {
        if (desiredKnown) Calls.Enqueue("housekeep");
        return Task.CompletedTask;
    }
}

/// <summary>Snapshots as a worker publishes them, awaited by predicate (events, not sleeps; the guard is only against a hang).</summary>
public sealed class Published
{
    private readonly Channel<InstanceSnapshot> _channel = Channel.CreateUnbounded<InstanceSnapshot>();
    public InstanceSnapshot? Last { get; private set; }

    public void Add(InstanceSnapshot s) => _channel.Writer.TryWrite(s);

    public async Task<InstanceSnapshot> WaitAsync(Func<InstanceSnapshot, bool> until, string what)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (true)
            {
                var s = await _channel.Reader.ReadAsync(guard.Token);
                Last = s;
                if (until(s)) return s;
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"never published: {what} (last: {Last})");
        }
    }
}

public static class Desired
{
    public static readonly Guid Project = Guid.Parse("11111111-1111-1111-1111-111111111111");

    public static DesiredInstance Of(string app, Guid? id = null, string image = "t/p/app@sha256:1", Dictionary<string, string>? env = null) =>
        new(id ?? Guid.NewGuid(), "t", "p", Project, app, 1, image, env ?? new Dictionary<string, string> { ["A"] = "1" }, 8080, 64, 100);
}
