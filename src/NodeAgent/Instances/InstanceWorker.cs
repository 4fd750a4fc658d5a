using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Sync;

namespace Platform.NodeAgent.Instances;

/// <summary>
/// The one owner of one instance's state (as Nomad's alloc runner and kubelet's pod worker are): it
/// starts the container, watches it exit, backs off and restarts it, and removes it when told. The sync
/// loop talks to it only through commands on its channel (<see cref="Update"/>, <see cref="Remove"/>) and
/// reads only the <see cref="Snapshot"/> it publishes after every change. All its waiting (exit, back-off)
/// is on the runtime and the <see cref="TimeProvider"/>, so tests drive it with an in-memory runtime and a
/// fake clock. When the agent stops, the worker stops with it and leaves the container running: the next
/// agent adopts it.
/// </summary>
public sealed partial class InstanceWorker
{
    private abstract record Command;
    private sealed record UpdateCommand(DesiredInstance Desired) : Command;
    private sealed record RemoveCommand : Command;

    private enum Phase { Start, Run, Wait }

    private readonly Channel<Command> _commands = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly IContainerRuntime _runtime;
    private readonly TimeProvider _clock;
    private readonly ILogger _log;
    private readonly Action<InstanceSnapshot> _changed;
    private volatile InstanceSnapshot _snapshot;

    // Owned by RunAsync alone.
    private DesiredInstance _desired;
    private Phase _phase;
    private string _state;
    private int _restarts;
    private int _failuresInARow;
    private int? _exitCode;
    private string? _reason;
    private string? _message;
    private int? _hostPort;
    private DateTime? _startedAt;
    private DateTime _nextAttempt;
    private bool _processUp;
    private ProbeTracker? _readiness;
    private ProbeTracker? _liveness;
    private bool _killedUnhealthy;
    private bool _everReady;   // liveness counts only once the process was Ready (a slow start is not a failure to live)

    private InstanceWorker(DesiredInstance desired, Phase phase, string state, IContainerRuntime runtime, TimeProvider clock, ILogger log, Action<InstanceSnapshot> changed)
    {
        _desired = desired;
        _phase = phase;
        _state = state;
        _runtime = runtime;
        _clock = clock;
        _log = log;
        _changed = changed;
        _snapshot = new InstanceSnapshot(desired, state, 0, null, null, null, null, null);
    }

    /// <summary>A worker for an instance new to this node: it starts it.</summary>
    public static InstanceWorker New(DesiredInstance desired, IContainerRuntime runtime, TimeProvider clock, ILogger log, Action<InstanceSnapshot> changed) =>
        new(desired, Phase.Start, InstanceStates.Pending, runtime, clock, log, changed);

    /// <summary>A worker for what a previous run of the agent left: a running container is adopted, never restarted.</summary>
    public static InstanceWorker Adopt(RecoveredInstance found, IContainerRuntime runtime, TimeProvider clock, ILogger log, Action<InstanceSnapshot> changed)
    {
        var w = new InstanceWorker(found.Desired, Phase.Run, InstanceStates.Starting, runtime, clock, log, changed)
        {
            _hostPort = found.HostPort > 0 ? found.HostPort : null, _startedAt = found.StartedAt,
        };
        switch (found.State)
        {
            case RecoveredState.Running:
                // Adopted: probed again from now, as a fresh start would be (routed again once ready).
                w.Probing(clock.GetUtcNow().UtcDateTime, initialDelay: false);
                break;
            case RecoveredState.Exited:
                w.Exited(found.Exit!);
                w._phase = Phase.Wait;
                break;
            case RecoveredState.Interrupted:
                w._phase = Phase.Wait;
                w._state = InstanceStates.Failed;
                w._message = "the agent stopped while the instance was starting";
                w._nextAttempt = clock.GetUtcNow().UtcDateTime;
                break;
        }
        w._snapshot = w.Current();
        return w;
    }

    public Guid Id => _desired.Id;

    /// <summary>The state the worker last published.</summary>
    public InstanceSnapshot Snapshot => _snapshot;

    /// <summary>The instance's description changed: kept for its next start from scratch; a running container is not disturbed.</summary>
    public void Update(DesiredInstance desired) => _commands.Writer.TryWrite(new UpdateCommand(desired));

    /// <summary>Stop the instance and remove everything it has on this node; the worker then ends.</summary>
    public void Remove() => _commands.Writer.TryWrite(new RemoveCommand());

    public async Task RunAsync(CancellationToken ct)
    {
        Task<bool>? commands = null;
        Task<ExitInfo>? exit = null;
        Task<(ProbeTracker, ProbeResult)>? probe = null;
        CancellationTokenSource? watch = null;
        CancellationTokenSource? probing = null;
        void StopProbing()
        {
            probing?.Cancel();
            probing?.Dispose();
            (probing, probe) = (null, null);
        }
        void StopWatching()
        {
            StopProbing();
            watch?.Cancel();
            watch?.Dispose();
            (watch, exit) = (null, null);
        }
        try
        {
            while (true)
            {
                if (commands is { IsCompleted: true }) commands = null;
                while (_commands.Reader.TryRead(out var command))
                {
                    if (command is RemoveCommand)
                    {
                        StopWatching();
                        await RemoveAsync(ct);
                        return;
                    }
                    // An instance keeps running what it was started with: a rollout replaces it with a new
                    // instance. What changed (the app's env or port) is used when it next starts afresh.
                    var update = (UpdateCommand)command;
                    if (InstanceDiff.SameRun(update.Desired, _desired))
                    {
                        // Probes and the grace period apply at once, to the running process too.
                        if (InstanceDiff.Same(update.Desired, _desired)) continue;
                        _desired = update.Desired;
                        Respec();
                        StopProbing();   // the next probe is the new spec's
                        Publish();
                        continue;
                    }
                    LogChanged(_log, Id);
                    _desired = update.Desired;
                    Publish();
                }
                commands ??= _commands.Reader.WaitToReadAsync(ct).AsTask();

                switch (_phase)
                {
                    case Phase.Start:
                        await StartAsync(ct);
                        break;
                    case Phase.Run:
                        watch ??= CancellationTokenSource.CreateLinkedTokenSource(ct);
                        exit ??= _runtime.WaitForExitAsync(Id, watch.Token);
                        if (probe is null)
                        {
                            probing = CancellationTokenSource.CreateLinkedTokenSource(watch.Token);
                            probe = NextProbeAsync(probing.Token);
                        }
                        var done = await Task.WhenAny(exit, commands, probe);
                        if (done == probe)
                        {
                            var (tracker, result) = await probe;
                            StopProbing();
                            await ProbedAsync(tracker, result, ct);
                            break;
                        }
                        if (done != exit) break;
                        try
                        {
                            Exited(await exit);
                        }
                        catch (Exception e) when (e is not OperationCanceledException)
                        {
                            Failed(e);
                        }
                        StopWatching();
                        _phase = Phase.Wait;
                        Publish();
                        break;
                    case Phase.Wait:
                        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(ct))
                        {
                            var delay = DelayUntilAsync(_nextAttempt, wait.Token);
                            var first = await Task.WhenAny(delay, commands);
                            ct.ThrowIfCancellationRequested();   // a stopping agent starts nothing
                            if (first == delay) _phase = Phase.Start;
                            wait.Cancel();
                        }
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The agent is stopping: the container keeps running, and the next agent adopts it.
        }
        finally
        {
            StopWatching();
        }
    }

    private async Task StartAsync(CancellationToken ct)
    {
        _state = InstanceStates.Starting;
        Publish();
        try
        {
            var started = await _runtime.StartAsync(_desired, ct);
            (_hostPort, _startedAt, _exitCode, _message) = (started.HostPort, started.StartedAt, null, null);
            if (_restarts == 0) _reason = null;
            Probing(started.StartedAt, initialDelay: true);
            _phase = Phase.Run;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Failed(e);
            _phase = Phase.Wait;
        }
        Publish();
    }

    /// <summary>Removal is retried with back-off until it succeeds (a CNI DEL that failed once must not leak the network).</summary>
    private async Task RemoveAsync(CancellationToken ct)
    {
        // Out of the router's rotation first (its route goes with the desired state; Stopping says so to every
        // replica), then the runtime drains, sends SIGTERM, waits the app's grace period and sends SIGKILL.
        _state = InstanceStates.Stopping;
        _snapshot = Current() with { Removing = true };
        _changed(_snapshot);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _runtime.RemoveAsync(Id, ct);
                break;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _message = Trim(e.Message);
                _nextAttempt = _clock.GetUtcNow().UtcDateTime + RestartPolicy.Backoff(attempt);
                LogRemoveFailed(_log, Id, e.Message);
                _snapshot = Current() with { Removing = true, NextAttempt = _nextAttempt };
                _changed(_snapshot);
                await DelayUntilAsync(_nextAttempt, ct);
            }
        }
        _snapshot = Current() with { Removing = true, Removed = true };
        _changed(_snapshot);
    }

    /// <summary>Waits until <paramref name="at"/> on the clock (at once when it has passed).</summary>
    private Task DelayUntilAsync(DateTime at, CancellationToken ct)
    {
        var due = at - _clock.GetUtcNow().UtcDateTime;
        return Task.Delay(due > TimeSpan.Zero ? due : TimeSpan.Zero, _clock, ct);
    }

    private void Exited(ExitInfo exit)
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        _failuresInARow = RestartPolicy.AfterExit(_failuresInARow, _startedAt is { } started ? now - started : TimeSpan.Zero);
        _restarts++;
        (_exitCode, _reason) = (exit.ExitCode, _killedUnhealthy ? "Unhealthy" : exit.Reason);
        if (!_killedUnhealthy) _message = null;   // a liveness restart keeps the probe's words
        (_killedUnhealthy, _processUp, _readiness, _liveness) = (false, false, null, null);
        _state = _failuresInARow >= RestartPolicy.CrashLoopAfter ? InstanceStates.CrashLoop : InstanceStates.Restarting;
        _nextAttempt = now + RestartPolicy.Backoff(_failuresInARow);
        LogExited(_log, Id, exit.ExitCode, exit.Reason, _nextAttempt - now);
    }

    private void Failed(Exception e)
    {
        (_processUp, _readiness, _liveness) = (false, null, null);
        _hostPort = null;   // the runtime released what the failed start had
        _failuresInARow++;
        _state = _failuresInARow >= RestartPolicy.CrashLoopAfter ? InstanceStates.CrashLoop : InstanceStates.Failed;
        (_reason, _message) = ("StartFailed", Trim(e.Message));
        _nextAttempt = _clock.GetUtcNow().UtcDateTime + RestartPolicy.Backoff(_failuresInARow);
        LogStartFailed(_log, Id, e.Message);
    }

    private static string Trim(string message) => message.Length > 1000 ? message[..1000] : message;

    private InstanceSnapshot Current() =>
        new(_desired, _state, _restarts, _exitCode, _reason, _message, _hostPort, _startedAt, _phase == Phase.Wait ? _nextAttempt : null)
        {
            Running = _processUp,
        };

    /// <summary>The process just started (or was adopted): Ready at once without a readiness probe, else Starting until it passes.</summary>
    private void Probing(DateTime started, bool initialDelay)
    {
        _processUp = true;
        // A fresh process waits out each probe's initial delay; an adopted one is probed at once.
        DateTime FirstDue(ProbeSpec p) => initialDelay ? started + TimeSpan.FromSeconds(p.InitialDelaySeconds) : _clock.GetUtcNow().UtcDateTime;
        _readiness = _desired.Readiness is { Type: not ProbeTypes.Process } r ? new ProbeTracker("readiness", r, FirstDue(r)) : null;
        _liveness = _desired.Liveness is { Type: not ProbeTypes.Process } l ? new ProbeTracker("liveness", l, FirstDue(l)) : null;
        _state = _readiness is null ? InstanceStates.Ready : InstanceStates.Starting;
        _everReady = _readiness is null;
        _message = _readiness is null ? null : "readiness: not probed yet";
    }

    /// <summary>The app's probes changed while the process runs: trackers follow (a probe added starts from now, one removed goes).</summary>
    private void Respec()
    {
        if (!_processUp) return;
        var now = _clock.GetUtcNow().UtcDateTime;
        if (_desired.Readiness is { Type: not ProbeTypes.Process } r)
        {
            if (_readiness is null) (_readiness, _state, _message) = (new ProbeTracker("readiness", r, now + TimeSpan.FromSeconds(r.InitialDelaySeconds)), InstanceStates.Starting, "readiness: not probed yet");
            else _readiness.Respec(r, now);
        }
        else if (_readiness is not null)
        {
            (_readiness, _state, _message, _everReady) = (null, InstanceStates.Ready, null, true);
        }
        if (_desired.Liveness is { Type: not ProbeTypes.Process } l)
        {
            if (_liveness is null) _liveness = new ProbeTracker("liveness", l, now + TimeSpan.FromSeconds(l.InitialDelaySeconds));
            else _liveness.Respec(l, now);
        }
        else _liveness = null;
    }

    /// <summary>Waits for the probe due first, runs it with its timeout and returns what it found (never completes without probes).</summary>
    private async Task<(ProbeTracker, ProbeResult)> NextProbeAsync(CancellationToken ct)
    {
        var tracker = new[] { _readiness, _everReady ? _liveness : null }.Where(t => t is not null).MinBy(t => t!.NextDue);
        if (tracker is null)
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, _clock, ct);
            throw new OperationCanceledException(ct);
        }
        await DelayUntilAsync(tracker.NextDue, ct);
        var timeout = TimeSpan.FromSeconds(tracker.Spec.TimeoutSeconds);
        using var limit = new CancellationTokenSource(timeout, _clock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, limit.Token);
        try
        {
            return (tracker, await _runtime.ProbeAsync(Id, tracker.Spec, linked.Token));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (tracker, new ProbeResult(false, $"no answer within {tracker.Spec.TimeoutSeconds} s on :{_desired.Port}"));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return (tracker, new ProbeResult(false, Trim(e.Message)));
        }
    }

    /// <summary>Counts a probe's result: readiness moves Starting/NotReady ↔ Ready; liveness failing ends the process (restarted, reason Unhealthy).</summary>
    private async Task ProbedAsync(ProbeTracker tracker, ProbeResult result, CancellationToken ct)
    {
        if (tracker != _readiness && tracker != _liveness) return;   // a tracker the spec replaced meanwhile
        var now = _clock.GetUtcNow().UtcDateTime;
        var changed = tracker.Apply(result, now);
        if (tracker == _liveness && tracker.Passing == false)
        {
            (_message, _killedUnhealthy, _state) = (tracker.Failure + "; restarting", true, InstanceStates.NotReady);   // out of the rotation
            (_readiness, _liveness) = (null, null);   // this process is done: no more probes until the restart
            LogUnhealthy(_log, Id, tracker.Failure!);
            Publish();
            await _runtime.KillAsync(Id, TimeSpan.FromSeconds(_desired.StopGraceSeconds), ct);
            return;
        }
        var (state, message) = (_state, _message);
        if (tracker == _readiness && tracker.Passing == true) (_state, _everReady) = (InstanceStates.Ready, true);
        else if (tracker == _readiness && tracker.Passing == false && _state == InstanceStates.Ready) _state = InstanceStates.NotReady;
        // The words: why it is not ready, or, while Ready, a probe failing below its threshold (cleared by a pass).
        _message = _state == InstanceStates.Ready ? _liveness?.Failure ?? _readiness?.Failure : _readiness?.Failure ?? _liveness?.Failure ?? message;
        if (changed && _state == InstanceStates.NotReady) LogNotReady(_log, Id, tracker.Failure ?? "");
        if (state != _state || message != _message) Publish();
    }

    private void Publish()
    {
        _snapshot = Current();
        _changed(_snapshot);
    }

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Instance {Id} exited with {ExitCode} ({Reason}); restarting in {Delay}")]
    private static partial void LogExited(ILogger logger, Guid id, int exitCode, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Instance {Id} could not start: {Reason}")]
    private static partial void LogStartFailed(ILogger logger, Guid id, string reason);

    [LoggerMessage(EventId = 29, Level = LogLevel.Warning, Message = "Removing instance {Id} failed: {Reason}; retrying")]
    private static partial void LogRemoveFailed(ILogger logger, Guid id, string reason);

    [LoggerMessage(EventId = 33, Level = LogLevel.Warning, Message = "Instance {Id} failed its liveness probe: {Failure}; restarting it")]
    private static partial void LogUnhealthy(ILogger logger, Guid id, string failure);

    [LoggerMessage(EventId = 34, Level = LogLevel.Information, Message = "Instance {Id} is not ready: {Failure}")]
    private static partial void LogNotReady(ILogger logger, Guid id, string failure);

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Instance {Id} was described anew; it takes effect when it next starts from scratch")]
    private static partial void LogChanged(ILogger logger, Guid id);
}
