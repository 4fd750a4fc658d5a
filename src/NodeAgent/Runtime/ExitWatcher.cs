using System.Collections.Concurrent;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Learns how containers ended from the exit-code file each shim writes into its bundle (the shim outlives
/// the agent, so an exit while the agent was away is found too). One poller for every watched bundle, once
/// a second: a hundred instances cost one pass over a hundred small files, not a hundred timers.
/// </summary>
public sealed class ExitWatcher(TimeProvider clock)
{
    public static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, TaskCompletionSource<ExitInfo>> _watched = new();
    private readonly Lock _lock = new();
    private Task? _polling;

    /// <summary>Completes when the container of <paramref name="bundle"/> has ended (at once when it already has).</summary>
    public Task<ExitInfo> WaitAsync(string bundle, CancellationToken ct)
    {
        if (Runc.Exit(bundle) is { } exit) return Task.FromResult(exit);
        var waiter = _watched.GetOrAdd(bundle, _ => new TaskCompletionSource<ExitInfo>(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (_lock) _polling ??= Task.Run(PollAsync);
        return waiter.Task.WaitAsync(ct);
    }

    private async Task PollAsync()
    {
        while (true)
        {
            await Task.Delay(Poll, clock);
            foreach (var (bundle, waiter) in _watched)
            {
                ExitInfo? exit;
                try { exit = Runc.Exit(bundle); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                if (exit is not null && _watched.TryRemove(new KeyValuePair<string, TaskCompletionSource<ExitInfo>>(bundle, waiter)))
                    waiter.TrySetResult(exit);
                else if (!Directory.Exists(bundle) && _watched.TryRemove(new KeyValuePair<string, TaskCompletionSource<ExitInfo>>(bundle, waiter)))
                    waiter.TrySetException(new InvalidOperationException($"the bundle {bundle} is gone"));
            }
        }
    }

    /// <summary>After a stop: gives the shim a moment to write the exit code, so nothing writes into a deleted bundle.</summary>
    public static async Task SettleAsync(string bundle, TimeProvider clock, CancellationToken ct)
    {
        for (var i = 0; i < 40 && Directory.Exists(bundle) && !File.Exists(Path.Combine(bundle, "exit-code")) && File.Exists(Path.Combine(bundle, "config.json")); i++)
            await Task.Delay(TimeSpan.FromMilliseconds(25), clock, ct);
    }
}
