using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.NodeAgent.ControlPlane;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Status;
using Platform.NodeAgent.Sync;

namespace Platform.NodeAgent;

/// <summary>
/// The agent, put together (docs/architecture.md, "Node agent"): it joins the cluster once, then runs
/// the sync loop (which first adopts what a previous run left), the desired-state source (the Api's
/// long-poll), the status reporter, heartbeats (capacity, allocatable, usage, the control endpoint) and
/// the control server (instance logs for the Api). Failures talking to the Api are retried with back-off.
/// </summary>
public sealed partial class AgentService(IOptions<AgentOptions> options, TimeProvider clock, ILoggerFactory loggers) : BackgroundService
{
    private readonly ILogger _log = loggers.CreateLogger<AgentService>();
    private readonly ControlServer _control = new(clock);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var layout = o.Layout;
        var apiUrl = new Uri(o.ApiUrl!.TrimEnd('/') + "/");
        LogStarted(_log, o.NodeName, o.ApiUrl);
        using var api = new ControlPlaneClient(apiUrl, layout, clock, _log);
        var (joined, credentials) = await Retry.RunAsync(ct => api.LoadOrJoinAsync(o.JoinToken, o.NodeName, o.Address, ct), api.Reset, clock, _log, stoppingToken);
        if (!joined) return;

        using var registry = new HttpClient { BaseAddress = apiUrl, Timeout = TimeSpan.FromMinutes(10) };
        var runtime = new RuncRuntime(o.Runtime(apiUrl.Authority),
            () => new ImagePuller(registry, new LayerStore(layout.Layers, o.MaxLayerBytes), layout.Scratch, credentials.ClientId, credentials.ClientSecret,
                new ImageLimits(o.MaxImageBytes, o.MaxConfigBytes, o.MaxManifestBytes)),
            clock, loggers.CreateLogger<RuncRuntime>());
        var sync = new SyncLoop(runtime, new UsageSampler(runtime), clock, loggers);
        var reporter = new StatusReporter(api, sync, clock, loggers.CreateLogger<StatusReporter>());
        sync.Changed += reporter.Poke;
        var syncing = sync.RunAsync(stoppingToken);
        await Task.WhenAny(sync.Recovered, syncing);
        if (syncing.IsFaulted) await syncing;
        await _control.StartAsync(o.Address, o.ControlPort, runtime, stoppingToken);

        // Talking to the Api ends when the agent stops, or when the Api says this node was removed.
        using var member = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        async Task UntilRevokedAsync(Task talking)
        {
            try { await talking; }
            catch (NodeRevokedException e)
            {
                if (member.IsCancellationRequested) return;
                Revoked(o, api, sync, e.Message);
                await member.CancelAsync();
            }
        }
        await Task.WhenAll(
            UntilRevokedAsync(HeartbeatsAsync(o, api, sync, member.Token)),
            UntilRevokedAsync(new DesiredStateSource(api, sync, clock, loggers.CreateLogger<DesiredStateSource>()).RunAsync(member.Token)),
            UntilRevokedAsync(reporter.RunAsync(member.Token)),
            syncing);
        LogStopped(_log, o.NodeName);
    }

    /// <summary>
    /// A removed node's instances already run elsewhere (the Api rescheduled them) and it gets no traffic:
    /// it stops and removes its own (an empty desired state), sets its credentials aside and stays up,
    /// idle, until it is stopped; joining again takes a new join token.
    /// </summary>
    private void Revoked(AgentOptions o, ControlPlaneClient api, SyncLoop sync, string reason)
    {
        LogRevoked(_log, o.NodeName, reason);
        sync.SetDesired(new DesiredState(sync.DesiredRevision ?? 0, []));
        api.ForgetCredentials();
    }

    private async Task HeartbeatsAsync(AgentOptions o, ControlPlaneClient api, SyncLoop sync, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var (ok, wait) = await Retry.RunAsync(t =>
            {
                var capacity = new NodeResources(MemoryMiB(), Environment.ProcessorCount * 1000L);
                var allocatable = new NodeResources(Math.Max(0, capacity.MemoryMiB - o.ReservedMemoryMiB), Math.Max(0, capacity.CpuMillicores - o.ReservedCpuMillicores));
                var usage = sync.Usage();
                return api.HeartbeatAsync(new NodeHeartbeat(o.Address, typeof(AgentService).Assembly.GetName().Version?.ToString(),
                    capacity, allocatable, new NodeResources(usage.MemoryMiB, usage.CpuMillicores), usage.Running, _control.Port, _control.Key), t);
            }, api.Reset, clock, _log, ct);
            if (!ok) return;
            try { await Task.Delay(wait, clock, ct); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>MemTotal from /proc/meminfo, in MiB.</summary>
    private static long MemoryMiB()
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }

    public override void Dispose()
    {
        _control.DisposeAsync().AsTask().GetAwaiter().GetResult();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Node agent {Node} started; control plane {ApiUrl}")]
    private static partial void LogStarted(ILogger logger, string node, string? apiUrl);

    [LoggerMessage(EventId = 6, Level = LogLevel.Error, Message = "Node {Node} was removed from the cluster ({Reason}): its instances are stopped and it takes no more work; join again with a new join token")]
    private static partial void LogRevoked(ILogger logger, string node, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Node agent {Node} stopped")]
    private static partial void LogStopped(ILogger logger, string node);
}
