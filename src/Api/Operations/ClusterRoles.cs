using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Operations;

/// <summary>
/// The control plane's singleton roles and who holds them. On PostgreSQL each role is a session-level advisory lock
/// (<c>pg_try_advisory_lock</c>) on one connection of this replica's own: PostgreSQL gives it to one session at a time
/// and takes it back when that session ends, however the replica ended (a stop, a kill, a lost machine: the session's
/// TCP keep-alive is set to notice a silent peer within about 6 s). Every replica tries for the roles it lacks every
/// <see cref="Tick"/>, so another takes over within seconds; a holder whose connection fails drops its roles at once,
/// before PostgreSQL hands them on. On SQLite there is one Api process (<see cref="DataFolderGuard"/>), which holds them all.
/// Each replica also reports itself (<c>api_replicas</c>): its roles, its build workers, when it was last seen.
/// The work under a role is still written as conditional updates, so a moment of two holders costs nothing.
/// </summary>
public sealed partial class ClusterRoles(
    IConfiguration configuration, IOptions<PlatformOptions> options, IServiceScopeFactory scopes, TimeProvider clock, ILogger<ClusterRoles> log)
    : BackgroundService
{
    /// <summary>The placement pass, node staleness and rescheduling (<see cref="Scheduling.SchedulingLoop"/>).</summary>
    public const string Scheduler = "scheduler";
    /// <summary>Watching rollouts in progress: success, deadlines, rollbacks (<see cref="Rollouts.RolloutMonitor"/>).</summary>
    public const string Rollouts = "rollouts";
    public static readonly IReadOnlyList<string> All = [Scheduler, Rollouts];

    /// <summary>How often a replica tries for the roles it lacks, checks the ones it holds and reports itself.</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromSeconds(2);

    /// <summary>A replica not seen for this long is shown as gone; after an hour its row is removed.</summary>
    public static readonly TimeSpan GoneAfter = TimeSpan.FromSeconds(15);

    private readonly bool _postgres = options.Value.Database.Provider == DatabaseProvider.Postgres;
    private volatile string[] _held = options.Value.Database.Provider == DatabaseProvider.Postgres ? [] : [.. All];
    private NpgsqlConnection? _connection;

    /// <summary>This Api process among the replicas.</summary>
    public Guid Replica { get; } = Guid.CreateVersion7();
    /// <summary>Its <c>Platform:ReplicaName</c> (the host name by default).</summary>
    public string Name { get; } = options.Value.EffectiveReplicaName;
    public DateTime StartedAt { get; } = clock.GetUtcNow().UtcDateTime;

    public IReadOnlyList<string> Held => _held;

    /// <summary>Whether this replica holds <paramref name="role"/> now.</summary>
    public bool Holds(string role) => Array.IndexOf(_held, role) >= 0;

    private volatile string[] _elsewhere = [];

    /// <summary>Whether another replica's session held <paramref name="role"/> at this replica's last try for it (at most <see cref="Tick"/> ago).</summary>
    public bool HeldElsewhere(string role) => Array.IndexOf(_elsewhere, role) >= 0;

    /// <summary>The advisory lock key of a role: "platform" in the high half, the role's place in <see cref="All"/> in the low.</summary>
    private static long Key(string role) => (0x706c6174L << 32) | (uint)(All.ToList().IndexOf(role) + 1);

    private NpgsqlConnection? _nameLock;

    /// <summary>How long a starting replica waits for its name to be free (a crashed predecessor's session ends within about 6 s).</summary>
    public static readonly TimeSpan NameWait = TimeSpan.FromSeconds(10);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_postgres) await ClaimNameAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    /// <summary>
    /// On PostgreSQL, holds an advisory lock on this replica's name for its life: a second live replica with the same
    /// name would recover the first one's builds as its own at start, so it stops instead, saying why.
    /// </summary>
    private async Task ClaimNameAsync(CancellationToken ct)
    {
        _nameLock = await OpenAsync($"platform-replica {Name}", ct);
        var key = (0x706c726eL << 32) | BitConverter.ToUInt32(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Name)));
        // Real time, whatever clock the host runs on: this waits for another process's session to end.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            await using var take = new NpgsqlCommand("SELECT pg_try_advisory_lock(@key)", _nameLock);
            take.Parameters.AddWithValue("key", key);
            if (await take.ExecuteScalarAsync(ct) is true) return;
            if (waited.Elapsed > NameWait)
            {
                await _nameLock.DisposeAsync();
                _nameLock = null;
                throw new StartRefusedException(
                    $"Another running Api replica is named '{Name}' (Platform:ReplicaName, the host name by default). Give each replica a name of its own: "
                    + "a replica recovers the builds claimed under its name when it starts, so two replicas with one name would take each other's builds for their own.");
            }
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }
    }

    /// <summary>A connection of this replica's own (not pooled: its end is the session's end, which frees its locks).</summary>
    private async Task<NpgsqlConnection> OpenAsync(string application, CancellationToken ct)
    {
        var csb = new NpgsqlConnectionStringBuilder(configuration.GetConnectionString("Platform"))
        {
            Pooling = false, KeepAlive = 2, Timeout = 5, CommandTimeout = 5, ApplicationName = application,
        };
        var connection = new NpgsqlConnection(csb.ConnectionString);
        await connection.OpenAsync(ct);
        // PostgreSQL's side of the same session notices a vanished replica within about 6 s (idle 2 s, then 3 probes
        // a second apart, or 5 s of unacknowledged data) and ends it, which releases the replica's locks.
        await using var keepAlive = new NpgsqlCommand(
            "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 5000", connection);
        await keepAlive.ExecuteNonQueryAsync(ct);
        return connection;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            if (_postgres) await ElectAsync(stoppingToken);
            await ReportAsync(stoppingToken);
            try { await Task.Delay(Tick, clock, stoppingToken); }
            catch (OperationCanceledException) { break; }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Hand the roles on at once (the session's end releases its locks) and leave the list of replicas.
        Drop("the replica is stopping");
        if (_nameLock is not null) await _nameLock.DisposeAsync();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            await db.ApiReplicas.Where(r => r.Id == Replica).ExecuteDeleteAsync(cancellationToken);
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or OperationCanceledException) { }
    }

    private async Task ElectAsync(CancellationToken ct)
    {
        try
        {
            _connection ??= await OpenAsync($"platform-roles {Replica:N}", ct);
            var held = new List<string>();
            var elsewhere = new List<string>();
            foreach (var role in All)
            {
                // A held role is confirmed in pg_locks (asking for it again would stack the lock); a missing one is tried for.
                await using var take = new NpgsqlCommand(Holds(role)
                    ? "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
                        + "AND classid = (@key >> 32)::oid AND objid = (@key & 4294967295)::oid AND objsubid = 1)"
                    : "SELECT pg_try_advisory_lock(@key)", _connection);
                take.Parameters.AddWithValue("key", Key(role));
                if (await take.ExecuteScalarAsync(ct) is true) held.Add(role);
                else if (!Holds(role)) elsewhere.Add(role);   // refused: another session holds it
            }
            foreach (var role in held.Except(_held)) LogTook(log, Name, role);
            foreach (var role in _held.Except(held)) LogLost(log, Name, role, "another session holds it");
            _held = [.. held];
            _elsewhere = [.. elsewhere];
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or TimeoutException or IOException or System.Net.Sockets.SocketException)
        {
            Drop(e.Message);
        }
    }

    /// <summary>Gives up every role: the connection goes, and with its session the locks.</summary>
    private void Drop(string reason)
    {
        foreach (var role in _held) LogLost(log, Name, role, reason);
        if (_postgres) (_held, _elsewhere) = ([], []);
        var connection = Interlocked.Exchange(ref _connection, null);
        try { connection?.Dispose(); }
        catch (Exception e) when (e is DbException or InvalidOperationException or IOException) { }
    }

    private async Task ReportAsync(CancellationToken ct)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            var now = clock.GetUtcNow().UtcDateTime;
            var roles = string.Join(',', _held);
            var updated = await db.ApiReplicas.Where(r => r.Id == Replica)
                .ExecuteUpdateAsync(s => s.SetProperty(r => r.SeenAt, now).SetProperty(r => r.Roles, roles), ct);
            if (updated == 0)
            {
                db.ApiReplicas.Add(new ApiReplica
                {
                    Id = Replica, Name = Name, StartedAt = StartedAt, SeenAt = now, Roles = roles, BuildWorkers = options.Value.Builds.Workers,
                });
                await db.SaveChangesAsync(ct);
            }
            if (Holds(Scheduler))
                await db.ApiReplicas.Where(r => r.SeenAt < now.AddHours(-1)).ExecuteDeleteAsync(ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is DbException or DbUpdateException or InvalidOperationException)
        {
            LogReportFailed(log, e.Message);
        }
    }

    [LoggerMessage(EventId = 170, Level = LogLevel.Information, Message = "Replica {Replica} took the {Role} role")]
    private static partial void LogTook(ILogger logger, string replica, string role);

    [LoggerMessage(EventId = 171, Level = LogLevel.Warning, Message = "Replica {Replica} gave up the {Role} role: {Reason}")]
    private static partial void LogLost(ILogger logger, string replica, string role, string reason);

    [LoggerMessage(EventId = 172, Level = LogLevel.Warning, Message = "Reporting this replica failed ({Reason}); the next tick retries")]
    private static partial void LogReportFailed(ILogger logger, string reason);
}
