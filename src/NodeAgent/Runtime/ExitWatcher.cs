namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Learns how a container ended from the exit-code file its shim writes into the bundle (the shim outlives
/// the agent, so an exit while the agent was away is found too).
/// </summary>
public static class ExitWatcher
{
    public static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    public static async Task<ExitInfo> WaitAsync(string bundle, TimeProvider clock, CancellationToken ct)
    {
        while (true)
        {
            if (Runc.Exit(bundle) is { } exit) return exit;
            await Task.Delay(Poll, clock, ct);
        }
    }

    /// <summary>After a stop: gives the shim a moment to write the exit code, so nothing writes into a deleted bundle.</summary>
    public static async Task SettleAsync(string bundle, TimeProvider clock, CancellationToken ct)
    {
        for (var i = 0; i < 40 && Directory.Exists(bundle) && !File.Exists(Path.Combine(bundle, "exit-code")) && File.Exists(Path.Combine(bundle, "config.json")); i++)
            await Task.Delay(TimeSpan.FromMilliseconds(25), clock, ct);
    }
}
