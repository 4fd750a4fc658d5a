using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Platform.Contracts;
using Platform.NodeAgent.Instances;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Instances;

/// <summary>One worker per instance, driven through an in-memory runtime and a fake clock: no root, no sleeps.</summary>
public sealed class InstanceWorkerTests : IDisposable
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeRuntime _runtime;
    private readonly Published _published = new();
    private readonly CancellationTokenSource _agent = new();

    public InstanceWorkerTests() => _runtime = new FakeRuntime(_clock);

    public void Dispose() => _agent.Cancel();

    private DateTime Now => _clock.GetUtcNow().UtcDateTime;

    private (InstanceWorker Worker, Task Run) Start(DesiredInstance d)
    {
        var w = InstanceWorker.New(d, _runtime, _clock, NullLogger.Instance, _published.Add);
        return (w, Task.Run(() => w.RunAsync(_agent.Token)));
    }

    private (InstanceWorker Worker, Task Run) Adopt(RecoveredInstance found)
    {
        var w = InstanceWorker.Adopt(found, _runtime, _clock, NullLogger.Instance, _published.Add);
        return (w, Task.Run(() => w.RunAsync(_agent.Token)));
    }

    private Task<InstanceSnapshot> Becomes(string state, string? what = null) => _published.WaitAsync(s => s.State == state, what ?? state);

    [Fact]
    public async Task A_new_instance_is_started_and_reported_running_with_its_port()
    {
        var d = Desired.Of("web");
        var (w, _) = Start(d);
        await Becomes(InstanceStates.Starting);
        var running = await Becomes(InstanceStates.Ready);
        Assert.NotNull(running.HostPort);
        Assert.Equal(Now, running.StartedAt);
        Assert.Null(running.NextAttempt);
        Assert.Equal(running, w.Snapshot);
        Assert.Equal(1, _runtime.Count("start web"));
    }

    [Fact]
    public async Task Exits_back_off_doubling_and_three_quick_ones_in_a_row_are_a_crash_loop()
    {
        var d = Desired.Of("crash");
        Start(d);
        await Becomes(InstanceStates.Ready);

        _runtime.Exit(d.Id, 3);
        var first = await Becomes(InstanceStates.Restarting);
        Assert.Equal((1, 3, "Error"), (first.Restarts, first.ExitCode, first.Reason));
        Assert.Equal(Now + TimeSpan.FromSeconds(1), first.NextAttempt);

        _clock.Advance(TimeSpan.FromSeconds(1));
        await Becomes(InstanceStates.Ready, "the first restart");
        _runtime.Exit(d.Id, 3);
        var second = await Becomes(InstanceStates.Restarting);
        Assert.Equal(Now + TimeSpan.FromSeconds(2), second.NextAttempt);

        _clock.Advance(TimeSpan.FromSeconds(2));
        await Becomes(InstanceStates.Ready, "the second restart");
        _runtime.Exit(d.Id, 3, oom: true);
        var third = await Becomes(InstanceStates.CrashLoop);
        Assert.Equal((3, 3, "OOMKilled"), (third.Restarts, third.ExitCode, third.Reason));
        Assert.Equal(Now + TimeSpan.FromSeconds(4), third.NextAttempt);
        Assert.Equal(3, _runtime.Count("start crash"));

        _clock.Advance(TimeSpan.FromSeconds(4));
        var again = await Becomes(InstanceStates.Ready, "restarts go on in a crash loop");
        Assert.Equal("OOMKilled", again.Reason);   // the last exit's reason stays once it has restarted
        Assert.Null(again.ExitCode);
    }

    [Fact]
    public async Task A_run_longer_than_a_quick_failure_starts_the_back_off_again()
    {
        var d = Desired.Of("steady");
        Start(d);
        await Becomes(InstanceStates.Ready);
        _runtime.Exit(d.Id, 1);
        await Becomes(InstanceStates.Restarting);
        _clock.Advance(TimeSpan.FromSeconds(1));
        await Becomes(InstanceStates.Ready);

        _clock.Advance(RestartPolicy.QuickFailure + TimeSpan.FromSeconds(1));
        _runtime.Exit(d.Id, 1);
        var exited = await Becomes(InstanceStates.Restarting);
        Assert.Equal(2, exited.Restarts);
        Assert.Equal(Now + TimeSpan.FromSeconds(1), exited.NextAttempt);
    }

    [Fact]
    public async Task A_start_that_fails_says_why_and_is_tried_again_after_the_back_off()
    {
        _runtime.StartFailures.Enqueue(new InvalidOperationException("runc could not start the container: mount refused"));
        var d = Desired.Of("broken");
        Start(d);
        var failed = await Becomes(InstanceStates.Failed);
        Assert.Equal("StartFailed", failed.Reason);
        Assert.Contains("mount refused", failed.Message);
        Assert.Equal(Now + TimeSpan.FromSeconds(1), failed.NextAttempt);

        _clock.Advance(TimeSpan.FromSeconds(1));
        var running = await Becomes(InstanceStates.Ready);
        Assert.Null(running.Reason);
        Assert.Null(running.Message);
        Assert.Equal(0, running.Restarts);
        Assert.Equal(2, _runtime.Count("start broken"));
    }

    [Fact]
    public async Task Remove_stops_the_container_removes_what_it_had_and_ends_the_worker()
    {
        var d = Desired.Of("gone");
        var (w, run) = Start(d);
        await Becomes(InstanceStates.Ready);
        Assert.True(_runtime.IsRunning(d.Id), "positive control: it runs before the remove");
        w.Remove();
        await _published.WaitAsync(s => s.Removed, "removed");
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(_runtime.IsRunning(d.Id));
        Assert.Contains(_runtime.Calls, c => c.StartsWith("remove ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_removal_that_fails_is_retried_until_it_succeeds()
    {
        var d = Desired.Of("sticky");
        var (w, run) = Start(d);
        await Becomes(InstanceStates.Ready);
        _runtime.RemoveFailures.Enqueue(new InvalidOperationException("CNI bridge DEL failed"));
        w.Remove();
        var failed = await _published.WaitAsync(s => s.Removing && s.Message is not null, "the failed removal");
        Assert.Contains("CNI bridge DEL failed", failed.Message);
        Assert.Equal(Now + TimeSpan.FromSeconds(1), failed.NextAttempt);
        Assert.False(run.IsCompleted);
        _clock.Advance(TimeSpan.FromSeconds(1));   // the first back-off
        await _published.WaitAsync(s => s.Removed, "removed after the retry");
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(2, _runtime.Calls.Count(c => c.StartsWith("remove ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_new_description_does_not_disturb_a_running_instance_and_is_used_when_it_starts_from_scratch()
    {
        _runtime.StartFailures.Enqueue(new InvalidOperationException("image not pulled yet"));
        var d = Desired.Of("web");
        var (w, _) = Start(d);
        await Becomes(InstanceStates.Failed);
        w.Update(d with { Env = new Dictionary<string, string> { ["A"] = "1" } });   // the same content in a new dictionary: nothing
        w.Update(d with { Env = new Dictionary<string, string> { ["A"] = "2" } });
        await _published.WaitAsync(s => s.Desired.Env["A"] == "2", "the new description");
        _clock.Advance(TimeSpan.FromSeconds(1));
        await Becomes(InstanceStates.Ready);
        Assert.True(_runtime.Started.TryPeek(out var started));
        Assert.Equal("2", started.Env["A"]);

        w.Update(d with { Env = new Dictionary<string, string> { ["A"] = "3" } });
        await _published.WaitAsync(s => s.Desired.Env["A"] == "3", "the newer description");
        Assert.Equal(InstanceStates.Ready, w.Snapshot.State);
        Assert.True(_runtime.IsRunning(d.Id));
        Assert.Equal(["start web", "start web"], _runtime.Calls.ToArray());   // no stop, no second start
    }

    [Fact]
    public async Task An_adopted_running_container_is_not_restarted_and_its_exit_is_still_seen()
    {
        var d = Desired.Of("kept");
        _runtime.Left.Add(new RecoveredInstance(d, RecoveredState.Running, null, 20001, Now.AddMinutes(-5)));
        await _runtime.RecoverAsync(CancellationToken.None);
        var (w, _) = Adopt(_runtime.Left[0]);
        Assert.Equal(InstanceStates.Ready, w.Snapshot.State);
        Assert.Equal(20001, w.Snapshot.HostPort);

        _runtime.Exit(d.Id, 0);
        var exited = await Becomes(InstanceStates.Restarting);
        Assert.Equal("Completed", exited.Reason);
        Assert.Equal(0, _runtime.Count("start kept"));   // adopted, never started again until it exited
        _clock.Advance(TimeSpan.FromSeconds(1));
        await Becomes(InstanceStates.Ready);
        Assert.Equal(1, _runtime.Count("start kept"));
    }

    [Fact]
    public async Task An_instance_that_exited_or_was_being_set_up_while_the_agent_was_away_is_started_again()
    {
        var exited = Desired.Of("exited");
        var interrupted = Desired.Of("interrupted");
        var w1 = InstanceWorker.Adopt(new RecoveredInstance(exited, RecoveredState.Exited, new ExitInfo(2, false), 0, Now.AddSeconds(-2)), _runtime, _clock, NullLogger.Instance, _published.Add);
        var w2 = InstanceWorker.Adopt(new RecoveredInstance(interrupted, RecoveredState.Interrupted, null, 0, null), _runtime, _clock, NullLogger.Instance, _published.Add);
        Assert.Equal((InstanceStates.Restarting, 2, 1), (w1.Snapshot.State, w1.Snapshot.ExitCode!.Value, w1.Snapshot.Restarts));
        Assert.Equal(InstanceStates.Failed, w2.Snapshot.State);
        Assert.Equal("the agent stopped while the instance was starting", w2.Snapshot.Message);

        _ = Task.Run(() => w2.RunAsync(_agent.Token));
        await _published.WaitAsync(s => s.Id == interrupted.Id && s.State == InstanceStates.Ready, "the interrupted one, at once");
        _ = Task.Run(() => w1.RunAsync(_agent.Token));
        _clock.Advance(TimeSpan.FromSeconds(1));
        await _published.WaitAsync(s => s.Id == exited.Id && s.State == InstanceStates.Ready, "the exited one, after its back-off");
    }

    [Fact]
    public async Task A_stopping_agent_leaves_its_containers_running_for_the_next_one()
    {
        var d = Desired.Of("web");
        var (_, run) = Start(d);
        await Becomes(InstanceStates.Ready);
        _agent.Cancel();
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(_runtime.IsRunning(d.Id));
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("remove ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_stopping_agent_starts_nothing_that_was_waiting_for_its_back_off()
    {
        var d = Desired.Of("waiting");
        var (_, run) = Start(d);
        await Becomes(InstanceStates.Ready);
        _runtime.Exit(d.Id, 1);
        await Becomes(InstanceStates.Restarting);
        _agent.Cancel();
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, _runtime.Count("start waiting"));
    }

    [Fact]
    public async Task A_restart_that_fails_reports_no_host_port()
    {
        var d = Desired.Of("flaky");
        Start(d);
        var running = await Becomes(InstanceStates.Ready);
        Assert.NotNull(running.HostPort);   // positive control
        _runtime.StartFailures.Enqueue(new InvalidOperationException("mount refused"));
        _runtime.Exit(d.Id, 1);
        await Becomes(InstanceStates.Restarting);
        _clock.Advance(TimeSpan.FromSeconds(1));
        var failed = await Becomes(InstanceStates.Failed);
        Assert.Null(failed.HostPort);
        Assert.Null(failed.Report(0, 0).HostPort);
    }

    [Fact]
    public async Task An_instance_being_removed_is_reported_stopping_so_it_leaves_the_rotation()
    {
        var d = Desired.Of("leaving");
        var (w, _) = Start(d);
        await Becomes(InstanceStates.Ready);
        w.Remove();
        var removing = await _published.WaitAsync(s => s.Removing, "removing");
        Assert.Equal(InstanceStates.Stopping, removing.State);
    }

    private Task<InstanceSnapshot> Says(string message) => _published.WaitAsync(s => s.Message == message, message);

    [Fact]
    public async Task Readiness_keeps_an_instance_starting_until_it_passes_and_failures_past_the_threshold_take_it_out_until_it_passes_again()
    {
        var d = Desired.Of("probed") with { Readiness = new ProbeSpec(ProbeTypes.Tcp, null, 200, 399, 2, 1, 1, 3, 0) };
        _runtime.ProbeAnswers[d.Id] = new ProbeResult(false, "connection refused on :8080");
        Start(d);
        var first = await Says("readiness: connection refused on :8080 (1 of 3)");
        Assert.Equal(InstanceStates.Starting, first.State);
        Assert.True(first.Running, "the process runs; only its readiness is missing");
        for (var n = 2; n <= 3; n++)
        {
            _clock.Advance(TimeSpan.FromSeconds(2));
            var again = await Says($"readiness: connection refused on :8080 ({n} of 3)");
            Assert.Equal(InstanceStates.Starting, again.State);   // never ready yet: it stays Starting, whatever the count
        }

        _runtime.ProbeAnswers[d.Id] = new ProbeResult(true, "connected on :8080");
        _clock.Advance(TimeSpan.FromSeconds(2));
        var ready = await Becomes(InstanceStates.Ready, "ready at its first pass");
        Assert.Null(ready.Message);

        // Two failures leave it Ready (saying so); the third takes it out of the rotation.
        _runtime.ProbeAnswers[d.Id] = new ProbeResult(false, "HTTP 503 on /healthz (expected 200–399)");
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(InstanceStates.Ready, (await Says("readiness: HTTP 503 on /healthz (expected 200–399) (1 of 3)")).State);
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(InstanceStates.Ready, (await Says("readiness: HTTP 503 on /healthz (expected 200–399) (2 of 3)")).State);
        _clock.Advance(TimeSpan.FromSeconds(2));
        var notReady = await Becomes(InstanceStates.NotReady);
        Assert.Equal("readiness: HTTP 503 on /healthz (expected 200–399) (3 of 3)", notReady.Message);
        Assert.True(notReady.Running);
        Assert.Equal(0, notReady.Restarts);   // readiness never restarts

        _runtime.ProbeAnswers[d.Id] = new ProbeResult(true, "HTTP 200 on /healthz");
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Null((await Becomes(InstanceStates.Ready, "back once it passes")).Message);
        Assert.Equal(1, _runtime.Count("start probed"));
    }

    [Fact]
    public async Task A_liveness_failure_past_its_threshold_kills_the_instance_which_is_restarted_with_reason_Unhealthy()
    {
        var d = Desired.Of("alive") with { Liveness = new ProbeSpec(ProbeTypes.Http, "/live", 200, 399, 10, 2, 1, 2, 0), StopGraceSeconds = 3 };
        Start(d);
        await Becomes(InstanceStates.Ready);   // no readiness probe: ready once running
        _runtime.ProbeAnswers[d.Id] = new ProbeResult(false, "HTTP 500 on /live (expected 200–399)");
        _clock.Advance(TimeSpan.FromSeconds(10));
        var warned = await Says("liveness: HTTP 500 on /live (expected 200–399) (1 of 2)");
        Assert.Equal(InstanceStates.Ready, warned.State);
        Assert.Equal(0, _runtime.Count("kill " + d.Id.ToString("N")[..4]));   // positive control for the kill below

        _clock.Advance(TimeSpan.FromSeconds(10));
        var restarting = await Becomes(InstanceStates.Restarting);
        Assert.Equal(("Unhealthy", 1), (restarting.Reason, restarting.Restarts));
        Assert.Equal("liveness: HTTP 500 on /live (expected 200–399) (2 of 2); restarting", restarting.Message);
        Assert.Equal(1, _runtime.Count("kill " + d.Id.ToString("N")[..4]));

        _runtime.ProbeAnswers[d.Id] = new ProbeResult(true, "HTTP 200 on /live");
        _clock.Advance(restarting.NextAttempt!.Value - Now);
        await Becomes(InstanceStates.Ready, "started again after its back-off");
        Assert.Equal(2, _runtime.Count("start alive"));
    }

    [Fact]
    public async Task A_changed_probe_applies_to_the_running_process_without_a_restart()
    {
        var d = Desired.Of("respec");
        var (w, _) = Start(d);
        await Becomes(InstanceStates.Ready);
        _runtime.ProbeAnswers[d.Id] = new ProbeResult(false, "connection refused on :8080");
        w.Update(d with { Readiness = new ProbeSpec(ProbeTypes.Tcp, null, 200, 399, 2, 1, 1, 1, 0) });
        var starting = await Becomes(InstanceStates.Starting, "probed from now on");
        Assert.True(starting.Running);
        await Says("readiness: connection refused on :8080 (1 of 1)");
        w.Update(d with { Readiness = new ProbeSpec(ProbeTypes.Process, null, 200, 399, 2, 1, 1, 1, 0) });
        await Becomes(InstanceStates.Ready, "a process probe: ready while it runs");
        Assert.Equal(1, _runtime.Count("start respec"));
    }
}
