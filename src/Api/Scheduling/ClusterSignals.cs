using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Scheduling;

/// <summary>
/// Wakes what waits on the cluster's state in this replica: agents long-polling for their node's next
/// desired revision, and the router's route table. On PostgreSQL every change is also sent with
/// NOTIFY (delivered at commit), and <see cref="PostgresListener"/> relays other replicas' changes here,
/// so an agent long-polling replica A hears of a placement made by replica B at once.
/// </summary>
public sealed class ClusterSignals
{
    public const string Channel = "platform_cluster";
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _nodes = new();
    private TaskCompletionSource _routes = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A task completing at the next change of <paramref name="node"/>; take it before reading the revision.</summary>
    public Task NodeChanged(Guid node) =>
        _nodes.GetOrAdd(node, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    public void NotifyNode(Guid node)
    {
        if (_nodes.TryRemove(node, out var waiter)) waiter.TrySetResult();
    }

    /// <summary>Wakes every node's long-poll (each rereads its revision): after notifications may have been missed.</summary>
    public void NotifyAllNodes()
    {
        foreach (var node in _nodes.Keys) NotifyNode(node);
    }

    public Task RoutesChanged => Volatile.Read(ref _routes).Task;

    public void NotifyRoutes() =>
        Interlocked.Exchange(ref _routes, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// On PostgreSQL, queues NOTIFYs for the other replicas, delivered when the current transaction
    /// commits. Call <see cref="Signal"/> after the commit for this replica's own waiters.
    /// </summary>
    public static async Task NotifyOthersAsync(PlatformDbContext db, IEnumerable<Guid> nodes, bool routes, CancellationToken ct)
    {
        if (!db.Database.IsNpgsql()) return;
        foreach (var payload in nodes.Distinct().Select(n => "node:" + n).Concat(routes ? ["routes"] : []))
            await db.Database.ExecuteSqlAsync($"SELECT pg_notify({Channel}, {payload})", ct);
    }

    /// <summary>
    /// After a committed change to what the routers serve (hosts, certificates, instances' readiness): every replica's
    /// route table refreshes, this one's at once, the others' through PostgreSQL's NOTIFY.
    /// </summary>
    public async Task RoutesChangedAsync(PlatformDbContext db, CancellationToken ct)
    {
        await NotifyOthersAsync(db, [], routes: true, ct);
        Signal([], routes: true);
    }

    public void Signal(IEnumerable<Guid> nodes, bool routes)
    {
        foreach (var n in nodes) NotifyNode(n);
        if (routes) NotifyRoutes();
    }

    public void Receive(string payload)
    {
        if (payload == "routes") NotifyRoutes();
        else if (payload.StartsWith("node:", StringComparison.Ordinal) && Guid.TryParse(payload.AsSpan(5), out var id)) NotifyNode(id);
    }
}

/// <summary>LISTENs on the cluster channel (PostgreSQL only) and relays notifications to <see cref="ClusterSignals"/> and, for placement handed between replicas, <see cref="PlacementBatches"/>.</summary>
public sealed partial class PostgresListener(IConfiguration configuration, ClusterSignals signals, PlacementBatches placement, TimeProvider clock, ILogger<PostgresListener> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(configuration.GetConnectionString("Platform"));
                connection.Notification += (_, e) =>
                {
                    if (!placement.Receive(e.Payload)) signals.Receive(e.Payload);
                };
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {ClusterSignals.Channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                // Whatever happened while not listening: wake every waiter once so it rereads the database.
                signals.NotifyRoutes();
                signals.NotifyAllNodes();
                while (!stoppingToken.IsCancellationRequested)
                    await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                LogLost(log, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), clock, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
            }
        }
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Listening for cluster changes failed ({Reason}); retrying")]
    private static partial void LogLost(ILogger logger, string reason);
}
