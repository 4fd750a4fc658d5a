using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Apps;

/// <summary>
/// An app's readiness and liveness probes: checked as a client sets them (every member optional, errors naming
/// <c>readiness.intervalSeconds</c> and the like) and resolved with the defaults into the <see cref="ProbeSpec"/> agents
/// run. Readiness by default: HTTP GET of the app's healthCheckPath when one is set, else a TCP connection to its
/// port, every 2 s (1 s timeout, ready after 1 pass, not ready after 3 failures). Liveness is off unless set (then
/// every 10 s, 2 s timeout, restarted after 3 failures).
/// </summary>
public static class Probes
{
    public const int DefaultStopGraceSeconds = 10;
    public const int MaxStopGraceSeconds = 600;

    private static ProbeSpec Defaults(bool liveness, string type) => liveness
        ? new ProbeSpec(type, null, 200, 399, 10, 2, 1, 3, 0)
        : new ProbeSpec(type, null, 200, 399, 2, 1, 1, 3, 0);

    /// <summary>The readiness probe an app's instances run: the one set, or the default.</summary>
    public static ProbeSpec Readiness(App a) => Readiness(a.ReadinessProbe, a.HealthCheckPath);

    public static ProbeSpec Readiness(ProbeSpec? set, string? healthCheckPath) =>
        WithPath(set ?? Defaults(false, healthCheckPath is null ? ProbeTypes.Tcp : ProbeTypes.Http), healthCheckPath);

    /// <summary>The liveness probe, or null (off).</summary>
    public static ProbeSpec? Liveness(App a) => Liveness(a.LivenessProbe, a.HealthCheckPath);

    public static ProbeSpec? Liveness(ProbeSpec? set, string? healthCheckPath) => set is { } p ? WithPath(p, healthCheckPath) : null;

    /// <summary>An HTTP probe without a path of its own asks the app's healthCheckPath (or <c>/</c>).</summary>
    private static ProbeSpec WithPath(ProbeSpec p, string? healthCheckPath) =>
        p.Type == ProbeTypes.Http && p.Path is null ? p with { Path = healthCheckPath ?? "/" } : p;

    /// <summary>
    /// What a request's probe resolves to (kept as given: a path left out follows the healthCheckPath), or null with
    /// the problems added under <paramref name="field"/>; for liveness, <c>none</c> is null with no problem (off).
    /// </summary>
    public static (ProbeSpec? Spec, bool Valid) Resolve(ProbeRequest request, string field, bool liveness, Problems.Errors errors)
    {
        var type = request.Type?.ToLowerInvariant();
        if (liveness && type == "none") return (null, true);
        if (type is null || !ProbeTypes.All.Contains(type))
        {
            errors.Add(field + ".type", liveness ? "must be 'tcp', 'http', 'process' or 'none'." : "must be 'tcp', 'http' or 'process'.");
            return (null, false);
        }
        var d = Defaults(liveness, type);
        var spec = new ProbeSpec(type, request.Path, request.StatusMin ?? d.StatusMin, request.StatusMax ?? d.StatusMax,
            request.IntervalSeconds ?? d.IntervalSeconds,
            request.TimeoutSeconds ?? Math.Min(d.TimeoutSeconds, Math.Max(1, request.IntervalSeconds ?? d.IntervalSeconds)),   // a default never exceeds the interval asked for
            request.SuccessThreshold ?? d.SuccessThreshold, request.FailureThreshold ?? d.FailureThreshold,
            request.InitialDelaySeconds ?? d.InitialDelaySeconds);
        var before = errors.Count;
        if (request.Path is not null && type != ProbeTypes.Http)
            errors.Add(field + ".path", "is only used by an 'http' probe.");
        else if (request.Path is not null && PathProblem(request.Path) is { } pathProblem)
            errors.Add(field + ".path", pathProblem);
        errors.Range(field + ".statusMin", spec.StatusMin, 100, 599).Range(field + ".statusMax", spec.StatusMax, 100, 599)
            .Range(field + ".intervalSeconds", spec.IntervalSeconds, 1, 300)
            .Range(field + ".timeoutSeconds", spec.TimeoutSeconds, 1, 60)
            .Range(field + ".successThreshold", spec.SuccessThreshold, 1, liveness ? 1 : 10)
            .Range(field + ".failureThreshold", spec.FailureThreshold, 1, 30)
            .Range(field + ".initialDelaySeconds", spec.InitialDelaySeconds, 0, 3600);
        if (spec.StatusMin > spec.StatusMax) errors.Add(field + ".statusMax", "must be at least statusMin.");
        if (spec.TimeoutSeconds > spec.IntervalSeconds) errors.Add(field + ".timeoutSeconds", "must be at most intervalSeconds.");
        return errors.Count == before ? (spec, true) : (null, false);
    }

    /// <summary>Why <paramref name="path"/> is not a probe's (or healthCheckPath's) URL path, or null.</summary>
    public static string? PathProblem(string path) =>
        path.Length > Quantities.MaxHealthCheckPathLength || !path.StartsWith('/') || path.Any(char.IsControl) || path.Contains(' ')
            ? $"must be a URL path starting with '/', without spaces or control characters, at most {Quantities.MaxHealthCheckPathLength} characters."
            : null;
}
