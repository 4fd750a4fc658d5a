namespace Platform.Contracts;

// An app's traffic through the router (`GET …/apps/{app}/requests?window=1h|6h|24h`), for the app page's chart.

/// <summary>
/// One step of an app's traffic: the answers the router gave in it, by status class, and their latency (p50 and p99
/// in ms, from a histogram; null when nothing came). <c>requests</c> is their sum.
/// </summary>
public sealed record RequestPoint(DateTime At, long Status1xx, long Status2xx, long Status3xx, long Status4xx, long Status5xx, double? P50Ms, double? P99Ms)
{
    public long Requests => Status1xx + Status2xx + Status3xx + Status4xx + Status5xx;
}

/// <summary>
/// An app's traffic over <c>window</c> in steps of <c>stepSeconds</c>, oldest first, every step present; the totals
/// and latency over the whole window. Counted by every router replica; at most a few seconds behind.
/// </summary>
public sealed record RequestSeriesResponse(string Window, int StepSeconds, IReadOnlyList<RequestPoint> Points, long Requests, long Status5xx,
    double? P50Ms, double? P99Ms);
