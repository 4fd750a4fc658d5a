using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Platform.Contracts;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Status;
using Platform.NodeAgent.Sync;
using Platform.NodeAgent.Tests.Instances;

namespace Platform.NodeAgent.Tests.Sync;

/// <summary>The sync loop over an in-memory runtime: adoption, the first desired state, removes before adds, reports.</summary>
public sealed class SyncLoopTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeRuntime _runtime;
    private readonly SyncLoop _sync;
    private readonly CancellationTokenSource _stop = new();
    private readonly System.Threading.Channels.Channel<bool> _changes = System.Threading.Channels.Channel.CreateUnbounded<bool>();
    private Task _run = Task.CompletedTask;

    public SyncLoopTests()
    {
        _runtime = new FakeRuntime(_clock);
        _sync = new SyncLoop(_runtime, new UsageSampler(_runtime), _clock, NullLoggerFactory.Instance);
        _sync.Changed += () => _changes.Writer.TryWrite(true);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _run.WaitAsync(TimeSpan.FromSeconds(20));
    }

    private async Task RunAsync()
    {
        _run = Task.Run(() => _sync.RunAsync(_stop.Token));
        await _sync.Recovered.WaitAsync(TimeSpan.FromSeconds(20));
    }

    /// <summary>Waits for the reports to say so, on every change the loop announces.</summary>
    private async Task<IReadOnlyList<InstanceReport>> ReportsAsync(Func<IReadOnlyList<InstanceReport>, bool> until, string what)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var reports = _sync.Reports();
            if (until(reports)) return reports;
            try { await _changes.Reader.ReadAsync(guard.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"never: {what}; reports: {string.Join(", ", reports)}"); }
        }
    }

    [Fact]
    public async Task What_a_previous_agent_left_is_adopted_and_nothing_is_removed_before_the_first_desired_state()
    {
        var kept = Desired.Of("kept");
        _runtime.Left.Add(new RecoveredInstance(kept, RecoveredState.Running, null, 20001, _clock.GetUtcNow().UtcDateTime));
        await RunAsync();
        var reports = _sync.Reports();
        Assert.Equal(InstanceStates.Ready, Assert.Single(reports).State);
        _clock.Advance(TimeSpan.FromSeconds(5));   // several ticks of the loop
        await ReportsAsync(r => r.Single().State == InstanceStates.Ready, "still running");
        Assert.DoesNotContain(_runtime.Calls, c => c.StartsWith("remove", StringComparison.Ordinal));
        Assert.DoesNotContain("housekeep", _runtime.Calls);   // no image collection before the Api has spoken

        _sync.SetDesired(new DesiredState(1, []));
        await ReportsAsync(r => r.Count == 0, "the adopted instance removed once the Api says it is not wanted");
        Assert.Contains(_runtime.Calls, c => c.StartsWith("remove", StringComparison.Ordinal));
        Assert.False(_runtime.IsRunning(kept.Id));
    }

    [Fact]
    public async Task Instances_follow_the_desired_state_and_are_reported_with_their_usage()
    {
        await RunAsync();
        var (a, b) = (Desired.Of("a"), Desired.Of("b"));
        _sync.SetDesired(new DesiredState(1, [a, b]));
        await ReportsAsync(r => r.Count == 2 && r.All(x => x.State == InstanceStates.Ready), "both running");
        Assert.Equal(1, _sync.DesiredRevision);

        _clock.Advance(SyncLoop.HousekeepingEvery);   // a usage sample
        await ReportsAsync(r => r.All(x => x.UsedMemoryBytes == 4 << 20), "memory sampled");
        Assert.Equal((4L << 20) * 2 / (1024 * 1024), _sync.Usage().MemoryMiB);
        Assert.Equal(2, _sync.Usage().Running);

        var c = Desired.Of("c");
        _sync.SetDesired(new DesiredState(2, [b, c]));
        var reports = await ReportsAsync(r => r.Count == 2 && r.Any(x => x.Id == c.Id && x.State == InstanceStates.Ready), "a replaced by c");
        Assert.DoesNotContain(reports, x => x.Id == a.Id);
        Assert.Contains("housekeep", _runtime.Calls);
    }

    [Fact]
    public async Task An_instance_that_is_removed_and_desired_again_gets_a_new_worker()
    {
        await RunAsync();
        var a = Desired.Of("a");
        _sync.SetDesired(new DesiredState(1, [a]));
        await ReportsAsync(r => r.Count == 1 && r[0].State == InstanceStates.Ready, "running");
        _sync.SetDesired(new DesiredState(2, []));
        await ReportsAsync(r => r.Count == 0, "removed");
        _sync.SetDesired(new DesiredState(3, [a]));
        await ReportsAsync(r => r.Count == 1 && r[0].State == InstanceStates.Ready, "running again");
        Assert.Equal(2, _runtime.Count("start a"));
    }
}
