using System.Collections.Frozen;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Routing;

/// <summary>An app as the router sees it: its host and where its running instances listen.</summary>
public sealed class RouteEntry(Guid appId, string app, string project, string team, IReadOnlyList<string> destinations, bool httpsRedirect = true, bool hsts = false)
{
    private int _next = -1;
    public Guid AppId { get; } = appId;
    public string App { get; } = app;
    /// <summary>team/project/app, as metrics and the access log name the app (made once, not per request).</summary>
    public string Key { get; } = $"{team}/{project}/{app}";
    /// <summary>The metrics tag for this app.</summary>
    public KeyValuePair<string, object?> Tag { get; } = new("app", $"{team}/{project}/{app}");
    public string Project { get; } = project;
    public string Team { get; } = team;
    /// <summary>http://{node address}:{host port}/ of each Ready instance (its readiness probe passes).</summary>
    public IReadOnlyList<string> Destinations { get; } = destinations;
    /// <summary>Plain HTTP to a host of the app that has a certificate is redirected to HTTPS.</summary>
    public bool HttpsRedirect { get; } = httpsRedirect;
    /// <summary>HTTPS answers carry Strict-Transport-Security.</summary>
    public bool Hsts { get; } = hsts;

    /// <summary>Round robin across the destinations (lock-free; fair under concurrency).</summary>
    public string? Next() => Destinations.Count == 0 ? null : Destinations[(int)((uint)Interlocked.Increment(ref _next) % (uint)Destinations.Count)];
}

/// <summary>
/// Host name → app and running instances, rebuilt from the database whenever this replica hears of a
/// change (<see cref="ClusterSignals"/>, which on PostgreSQL includes other replicas' changes) and at
/// least every second, so a new or stopped instance is routed within a second. Reads are a frozen
/// dictionary lookup, swapped atomically.
/// </summary>
public sealed partial class RouteTable(IServiceScopeFactory scopes, ClusterSignals signals, IOptions<PlatformOptions> options,
    TlsCertificates tls, TimeProvider clock, ILogger<RouteTable> log) : BackgroundService
{
    private volatile FrozenDictionary<string, RouteEntry> _routes = FrozenDictionary<string, RouteEntry>.Empty;
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Loaded => _loaded.Task;

    public RouteEntry? Find(string host) => _routes.GetValueOrDefault(host);

    /// <summary>The host name an app is served at, <c>{app}-{project}-{team}.{domain}</c>: the one place it is spelled (the route table and the app's url).</summary>
    public static string HostOf(string app, string project, string team, string domain) => $"{Names.HostLabel(app, project, team)}.{domain}".ToLowerInvariant();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var changed = signals.RoutesChanged;
            try
            {
                await RefreshAsync(stoppingToken);
                _loaded.TrySetResult();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
            {
                LogFailed(log, e.Message);
            }
            try { await changed.WaitAsync(TimeSpan.FromSeconds(1), clock, stoppingToken); }
            catch (TimeoutException) { }
            catch (OperationCanceledException) { return; }
        }
    }

    public async Task RefreshAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        var readySince = clock.GetUtcNow().UtcDateTime.AddSeconds(-options.Value.Nodes.NotReadyAfterSeconds);
        var apps = await db.Apps.AsNoTracking()
            .Select(a => new { a.Id, a.Name, Project = a.Project!.Name, Team = a.Project.Team!.Name, a.CreatedAt, a.HttpsRedirect, a.Hsts }).ToListAsync(ct);
        var running = await db.Instances.AsNoTracking()
            .Where(i => i.State == InstanceStates.Ready && i.HostPort != null && i.Node!.Address != null && i.Node.LastHeartbeatAt >= readySince)
            .Select(i => new { i.AppId, i.Node!.Address, i.HostPort }).ToListAsync(ct);
        var byApp = running.ToLookup(r => r.AppId, r => $"http://{(r.Address!.Contains(':') ? $"[{r.Address}]" : r.Address)}:{r.HostPort}/");
        var domain = options.Value.Ingress.Domain;
        var table = new Dictionary<string, RouteEntry>(StringComparer.OrdinalIgnoreCase);
        // Host labels are unique (App.Host) for every app created since issue 12; of two older apps that spell the same
        // host ("a-b" in project "c", "a" in "b-c"), the older keeps it.
        var entries = new Dictionary<Guid, RouteEntry>();
        foreach (var a in apps.OrderBy(a => a.CreatedAt).ThenBy(a => a.Id))
        {
            var entry = entries[a.Id] = new RouteEntry(a.Id, a.Name, a.Project, a.Team, byApp[a.Id].Order(StringComparer.Ordinal).ToList(), a.HttpsRedirect, a.Hsts);
            table.TryAdd(HostOf(a.Name, a.Project, a.Team, domain), entry);
        }
        // Custom domains share their app's entry (one rotation per app); their hosts never fall in the apps domain.
        foreach (var d in await db.CustomDomains.AsNoTracking().Select(d => new { d.Host, d.AppId }).ToListAsync(ct))
            if (entries.TryGetValue(d.AppId, out var entry)) table.TryAdd(d.Host, entry);
        var old = _routes;
        // Keep round-robin positions of unchanged entries so a refresh does not reset the rotation.
        foreach (var (host, entry) in table.ToList())
            if (old.TryGetValue(host, out var previous) && previous.Destinations.SequenceEqual(entry.Destinations)
                && (previous.HttpsRedirect, previous.Hsts) == (entry.HttpsRedirect, entry.Hsts))
                table[host] = previous;
        await tls.RefreshAsync(db, ct);
        _routes = table.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Warning, Message = "Refreshing the route table failed ({Reason}); keeping the previous one")]
    private static partial void LogFailed(ILogger logger, string reason);
}
