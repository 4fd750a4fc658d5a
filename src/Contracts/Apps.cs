using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Apps of a project (`…/projects/{project}/apps`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateAppRequest(
    string? Name,
    string? Image,
    int? Instances,
    int? MemoryMiB,
    int? CpuMillicores,
    int? Port,
    Dictionary<string, string?>? Env,
    string? HealthCheckPath,
    string? SourceUrl = null,
    string? Branch = null,
    string? DockerfilePath = null,
    string? WebhookSecret = null,
    ProbeRequest? Readiness = null,
    ProbeRequest? Liveness = null,
    int? StopGraceSeconds = null,
    int? ProgressDeadlineSeconds = null,
    bool? HttpsRedirect = null,
    bool? Hsts = null);

/// <summary>
/// A readiness or liveness probe as a client sets it; members left out take their defaults. <c>type</c>: <c>tcp</c>,
/// <c>http</c> (path, default the app's healthCheckPath or <c>/</c>; status range, default 200–399) or <c>process</c>;
/// for liveness also <c>none</c> (off).
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ProbeRequest(
    string? Type, string? Path = null, int? StatusMin = null, int? StatusMax = null, int? IntervalSeconds = null, int? TimeoutSeconds = null,
    int? SuccessThreshold = null, int? FailureThreshold = null, int? InitialDelaySeconds = null);

/// <summary>A partial update: only the members present change (JSON merge-patch semantics for scalars).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record UpdateAppRequest(
    string? Image,
    int? Instances,
    int? MemoryMiB,
    int? CpuMillicores,
    int? Port,
    Dictionary<string, string?>? Env,
    string? HealthCheckPath,
    string? SourceUrl = null,
    string? Branch = null,
    string? DockerfilePath = null,
    string? WebhookSecret = null,
    ProbeRequest? Readiness = null,
    ProbeRequest? Liveness = null,
    int? StopGraceSeconds = null,
    int? ProgressDeadlineSeconds = null,
    bool? HttpsRedirect = null,
    bool? Hsts = null);

public sealed record AppResponse(
    string Name,
    string Project,
    string Team,
    string? Image,
    int Instances,
    int MemoryMiB,
    int CpuMillicores,
    int Port,
    IReadOnlyDictionary<string, string> Env,
    string? HealthCheckPath,
    string Url,
    string? GitUrl,
    DateTime CreatedAt,
    DateTime UpdatedAt,
    AppStatus? Status = null,
    string? SourceUrl = null,
    string? Branch = null,
    string? DockerfilePath = null,
    string? WebhookUrl = null,
    /// <summary>Only in the response of the request that generated it (a source URL set without a secret): shown once.</summary>
    string? WebhookSecret = null,
    /// <summary>The readiness probe in effect (the default when none was set).</summary>
    ProbeSpec? Readiness = null,
    /// <summary>The liveness probe, or null (off).</summary>
    ProbeSpec? Liveness = null,
    /// <summary>Seconds between SIGTERM and SIGKILL when an instance stops.</summary>
    int StopGraceSeconds = 10,
    /// <summary>A rollout not Ready in full this many seconds after it started is rolled back to the last good spec.</summary>
    int ProgressDeadlineSeconds = 120,
    /// <summary>The router answers plain HTTP with a redirect to HTTPS for every host of the app that has a certificate.</summary>
    bool HttpsRedirect = true,
    /// <summary>HTTPS answers carry Strict-Transport-Security (a year), so browsers stop trying HTTP.</summary>
    bool Hsts = false);

/// <summary>
/// How many instances of the current generation are Ready out of how many are wanted, and why not all when they
/// are not ("rolling out 1/2" while the previous generation still serves).
/// </summary>
public sealed record AppStatus(int Ready, int Desired, string? Message);
