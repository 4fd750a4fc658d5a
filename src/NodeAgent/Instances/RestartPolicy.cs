namespace Platform.NodeAgent.Instances;

/// <summary>
/// When an instance that exited or failed to start is tried again: exponential back-off from 1 s doubling
/// to 5 min, counted in failures in a row; a run shorter than <see cref="QuickFailure"/> counts as one
/// more, a longer one starts the count again. Three in a row is a crash loop.
/// </summary>
public static class RestartPolicy
{
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan QuickFailure = TimeSpan.FromSeconds(10);
    public const int CrashLoopAfter = 3;

    public static TimeSpan Backoff(int failuresInARow) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Max(0, failuresInARow - 1))));

    /// <summary>The failures in a row after an exit, given how long the instance ran.</summary>
    public static int AfterExit(int failuresInARow, TimeSpan ran) => ran < QuickFailure ? failuresInARow + 1 : 1;
}
