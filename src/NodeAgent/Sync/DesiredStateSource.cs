using Microsoft.Extensions.Logging;
using Platform.NodeAgent.ControlPlane;

namespace Platform.NodeAgent.Sync;

/// <summary>
/// Where desired state comes from: the Api's long-poll, which answers as soon as a change for this node
/// commits (or with 304 when the poll times out). Every new snapshot goes to the sync loop.
/// </summary>
public sealed partial class DesiredStateSource(ControlPlaneClient api, SyncLoop sync, TimeProvider clock, ILogger<DesiredStateSource> log)
{
    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var (ok, desired) = await Retry.RunAsync(t => api.DesiredAsync(sync.DesiredRevision, t), api.Reset, clock, log, ct);
            if (!ok) return;
            if (desired is null) continue;
            LogDesired(log, desired.Revision, desired.Instances.Count);
            sync.SetDesired(desired);
        }
    }

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Desired state revision {Revision}: {Count} instance(s)")]
    private static partial void LogDesired(ILogger logger, long revision, int count);
}
