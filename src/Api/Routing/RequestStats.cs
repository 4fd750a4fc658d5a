using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Routing;

/// <summary>
/// Per-app request counts for the app page's chart: the router records each answer (status class and latency) into a
/// bucket per app and minute, in memory, with a few interlocked increments; <see cref="RequestStatsWriter"/> writes
/// the buckets that changed every few seconds as this replica's rows (<see cref="AppRequestMinute"/>), so what every
/// replica's router saw adds up in the database. /metrics has the same figures as counters for Prometheus; this is for
/// people who have no Prometheus.
/// </summary>
public sealed class RequestStats(TimeProvider clock)
{
    /// <summary>Upper bounds of the latency buckets (ms); one more bucket holds everything slower.</summary>
    public static readonly int[] BucketBoundsMs = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

    private const int Statuses = 5;
    private static readonly int Slots = Statuses + BucketBoundsMs.Length + 1;

    /// <summary>This process's id in the rows it writes.</summary>
    public Guid Replica { get; } = Guid.CreateVersion7();

    private readonly ConcurrentDictionary<(Guid App, long Minute), long[]> _buckets = new();

    public void Record(Guid app, int status, TimeSpan elapsed)
    {
        var minute = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var counts = _buckets.GetOrAdd((app, minute), static _ => new long[Slots]);
        Interlocked.Increment(ref counts[Math.Clamp(status / 100 - 1, 0, Statuses - 1)]);
        var ms = elapsed.TotalMilliseconds;
        var bucket = 0;
        while (bucket < BucketBoundsMs.Length && ms > BucketBoundsMs[bucket]) bucket++;
        Interlocked.Increment(ref counts[Statuses + bucket]);
    }

    /// <summary>The buckets as they stand, to write (absolute counts: writing one twice is harmless).</summary>
    internal List<AppRequestMinute> Snapshot()
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var rows = new List<AppRequestMinute>();
        foreach (var ((app, minute), counts) in _buckets)
        {
            var c = new long[Slots];
            for (var i = 0; i < Slots; i++) c[i] = Volatile.Read(ref counts[i]);
            rows.Add(new AppRequestMinute
            {
                AppId = app, Minute = DateTime.UnixEpoch.AddMinutes(minute), Replica = Replica,
                Status1xx = c[0], Status2xx = c[1], Status3xx = c[2], Status4xx = c[3], Status5xx = c[4], Latency = c[Statuses..].ToList(),
            });
        }
        return rows;
    }

    /// <summary>Forgets buckets more than two minutes old once they are written: no request ends in them any more.</summary>
    internal void Forget(IEnumerable<AppRequestMinute> written)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        foreach (var r in written)
        {
            var minute = (long)(r.Minute - DateTime.UnixEpoch).TotalMinutes;
            if (minute < now - 2) _buckets.TryRemove((r.AppId, minute), out _);
        }
    }

    /// <summary>The windows the API offers, and the step of each (a chart of 60 to 96 points).</summary>
    public static readonly IReadOnlyDictionary<string, (TimeSpan Span, TimeSpan Step)> Windows = new Dictionary<string, (TimeSpan, TimeSpan)>
    {
        ["1h"] = (TimeSpan.FromHours(1), TimeSpan.FromMinutes(1)),
        ["6h"] = (TimeSpan.FromHours(6), TimeSpan.FromMinutes(5)),
        ["24h"] = (TimeSpan.FromHours(24), TimeSpan.FromMinutes(15)),
    };

    /// <summary>How long rows are kept: the longest window and an hour (housekeeping deletes older ones).</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(25);

    /// <summary>An app's requests over <paramref name="window"/> (a key of <see cref="Windows"/>), every step present (zeros where nothing came).</summary>
    public static async Task<RequestSeriesResponse> SeriesAsync(PlatformDbContext db, Guid app, string window, DateTime now, CancellationToken ct)
    {
        var (span, step) = Windows[window];
        var stepMinutes = (long)step.TotalMinutes;
        var end = (long)(now - DateTime.UnixEpoch).TotalMinutes / stepMinutes * stepMinutes + stepMinutes;   // exclusive, in minutes
        var start = end - (long)span.TotalMinutes;
        var from = DateTime.UnixEpoch.AddMinutes(start);
        var rows = await db.AppRequestMinutes.AsNoTracking().Where(m => m.AppId == app && m.Minute >= from).ToListAsync(ct);
        var points = new List<RequestPoint>();
        long[] totalLatency = new long[BucketBoundsMs.Length + 1];
        for (var at = start; at < end; at += stepMinutes)
        {
            var atTime = DateTime.UnixEpoch.AddMinutes(at);
            var inStep = rows.Where(r => r.Minute >= atTime && r.Minute < atTime.AddMinutes(stepMinutes)).ToList();
            var latency = new long[BucketBoundsMs.Length + 1];
            foreach (var r in inStep)
                for (var i = 0; i < latency.Length && i < r.Latency.Count; i++)
                    latency[i] += r.Latency[i];
            for (var i = 0; i < latency.Length; i++) totalLatency[i] += latency[i];
            points.Add(new RequestPoint(atTime, inStep.Sum(r => r.Status1xx), inStep.Sum(r => r.Status2xx), inStep.Sum(r => r.Status3xx),
                inStep.Sum(r => r.Status4xx), inStep.Sum(r => r.Status5xx), Quantile(latency, 0.5), Quantile(latency, 0.99)));
        }
        return new RequestSeriesResponse(window, (int)step.TotalSeconds, points, points.Sum(p => p.Requests), points.Sum(p => p.Status5xx),
            Quantile(totalLatency, 0.5), Quantile(totalLatency, 0.99));
    }

    /// <summary>
    /// The <paramref name="q"/> quantile (ms) of a bucketed latency, interpolated within its bucket as Prometheus'
    /// histogram_quantile does; in the last, open bucket it is that bucket's lower bound. Null without requests.
    /// </summary>
    public static double? Quantile(IReadOnlyList<long> buckets, double q)
    {
        var total = buckets.Sum();
        if (total == 0) return null;
        var rank = q * total;
        long seen = 0;
        for (var i = 0; i < buckets.Count; i++)
        {
            if (buckets[i] == 0 || seen + buckets[i] < rank)
            {
                seen += buckets[i];
                continue;
            }
            if (i >= BucketBoundsMs.Length) return BucketBoundsMs[^1];
            double lower = i == 0 ? 0 : BucketBoundsMs[i - 1], upper = BucketBoundsMs[i];
            return Math.Round(lower + (upper - lower) * (rank - seen) / buckets[i], 2);
        }
        return BucketBoundsMs[^1];
    }
}

/// <summary>Writes <see cref="RequestStats"/> every few seconds, and once more when the Api stops.</summary>
public sealed partial class RequestStatsWriter(RequestStats stats, IServiceScopeFactory scopes, TimeProvider clock, ILogger<RequestStatsWriter> log)
    : BackgroundService
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(5);

    // What was last written per row, so unchanged buckets are not written again.
    private readonly Dictionary<(Guid, DateTime), long> _written = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try { await Task.Delay(Every, clock, stoppingToken); }
            catch (OperationCanceledException) { break; }
            await WriteAsync(CancellationToken.None);
        }
        await WriteAsync(CancellationToken.None);
    }

    private readonly SemaphoreSlim _one = new(1, 1);

    public async Task WriteAsync(CancellationToken ct)
    {
        await _one.WaitAsync(ct);
        try { await WriteOnceAsync(ct); }
        finally { _one.Release(); }
    }

    private async Task WriteOnceAsync(CancellationToken ct)
    {
        var rows = stats.Snapshot();
        var changed = rows.Where(r => !_written.TryGetValue((r.AppId, r.Minute), out var n) || n != Total(r)).ToList();
        stats.Forget(rows.Except(changed));   // old buckets already written as they stand
        if (changed.Count == 0) return;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            // Which of these rows exist already: asked each time rather than remembered, so a write that failed after
            // the database took it (a timeout) is an update the next round, not an insert that fails for ever.
            var oldest = changed.Min(r => r.Minute);
            var existing = (await db.AppRequestMinutes.AsNoTracking().Where(m => m.Replica == stats.Replica && m.Minute >= oldest)
                .Select(m => new { m.AppId, m.Minute }).ToListAsync(ct)).Select(m => (m.AppId, m.Minute)).ToHashSet();
            foreach (var r in changed)
            {
                if (existing.Contains((r.AppId, r.Minute))) db.AppRequestMinutes.Update(r);
                else db.AppRequestMinutes.Add(r);
            }
            await db.SaveChangesAsync(ct);
            foreach (var r in changed) _written[(r.AppId, r.Minute)] = Total(r);
            stats.Forget(changed);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Any failure (the database away, a retry limit): the counts stay in memory and the next round writes them;
            // the writer never ends, so the Api never stops over a chart.
            LogFailed(log, e.Message);
        }
        var cutoff = clock.GetUtcNow().UtcDateTime.AddMinutes(-5);
        foreach (var key in _written.Keys.Where(k => k.Item2 < cutoff).ToList()) _written.Remove(key);
    }

    private static long Total(AppRequestMinute r) => r.Status1xx + r.Status2xx + r.Status3xx + r.Status4xx + r.Status5xx;

    [LoggerMessage(EventId = 55, Level = LogLevel.Warning, Message = "Writing the router's request counts failed ({Reason}); the next round tries again")]
    private static partial void LogFailed(ILogger logger, string reason);
}

/// <summary><c>GET …/apps/{app}/requests?window=1h|6h|24h</c>: the app's traffic for its page's chart (viewers and up).</summary>
public static class RequestsApi
{
    public static RouteGroupBuilder MapRequestsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/teams/{team}/projects/{project}/apps/{app}/requests", GetAsync).WithName("apps.requests");
        return api;
    }

    private static async Task<Results<Ok<RequestSeriesResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, string app, string? window, AccessService access, PlatformDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        window ??= "1h";
        if (!RequestStats.Windows.ContainsKey(window))
            return Problems.Validation("window", $"is one of {string.Join(", ", RequestStats.Windows.Keys)}.");
        return TypedResults.Ok(await RequestStats.SeriesAsync(db, a!.Id, window, clock.GetUtcNow().UtcDateTime, ct));
    }
}
