using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Platform.NodeAgent.ControlPlane;

/// <summary>Talking to the Api: a step that fails for the network's or the Api's sake is retried, backing off from 1 s to 30 s.</summary>
public static partial class Retry
{
    /// <summary>Runs <paramref name="step"/> until it succeeds; not Ok only when <paramref name="ct"/> fires (shutdown).</summary>
    public static async Task<(bool Ok, T Value)> RunAsync<T>(Func<CancellationToken, Task<T>> step, Action onFailure, TimeProvider clock, ILogger log, CancellationToken ct)
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                return (true, await step(ct));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException or JsonException or TaskCanceledException or IOException)
            {
                LogFailed(log, e.Message, backoff.TotalSeconds);
                onFailure();
                try { await Task.Delay(backoff, clock, ct); }
                catch (OperationCanceledException) { break; }
                backoff = TimeSpan.FromSeconds(Math.Min(30, backoff.TotalSeconds * 2));
            }
        }
        return (false, default!);
    }

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Talking to the control plane failed ({Reason}); retrying in {Seconds} s")]
    private static partial void LogFailed(ILogger logger, string reason, double seconds);
}
