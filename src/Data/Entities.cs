using Microsoft.AspNetCore.Identity;
using Platform.Contracts;

namespace Platform.Data;

// Entities never cross the wire: the Api maps them to Platform.Contracts records.
// Times are UTC DateTime (SQLite orders them as ISO strings; PostgreSQL stores timestamptz).

public sealed class PlatformUser : IdentityUser
{
    public bool IsPlatformAdmin { get; set; }
    public DateTime CreatedAt { get; set; }
}

public sealed class Team
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }
    public TeamQuota Quota { get; set; } = new();
    /// <summary>The host-name suffixes the team's members may claim as custom domains (empty: any), set by platform admins.</summary>
    public List<string> DomainSuffixes { get; set; } = [];

    /// <summary>
    /// Bumped by every admission (app create/scale/resize, project create, project quota change) so
    /// that concurrent admissions in one team serialise on this row, on any number of Api replicas.
    /// </summary>
    public long AdmissionRevision { get; set; }

    // Usage counters, kept in step with the apps by every admission (in the same transaction, under
    // the team's row lock) so that admission reads two rows instead of summing every app.
    // Housekeeping recomputes them from the apps as a safety net.
    public long UsedMemoryMiB { get; set; }
    public long UsedCpuMillicores { get; set; }
    public long UsedInstances { get; set; }
    public long UsedApps { get; set; }
}

/// <summary>A team's limits, set by platform admins.</summary>
public sealed class TeamQuota
{
    public long MemoryMiB { get; set; }
    public long CpuMillicores { get; set; }
    public long Instances { get; set; }
    public long Apps { get; set; }
    public long Projects { get; set; }
    public long RegistryGiB { get; set; }
    public long ConcurrentBuilds { get; set; }
    // What one build of the team may use (a cgroup around the build) and how long it may take.
    public long BuildMemoryMiB { get; set; }
    public long BuildCpuMillicores { get; set; }
    public long BuildPids { get; set; }
    public long BuildTimeoutSeconds { get; set; }
}

public sealed class Project
{
    public Guid Id { get; set; }
    public Guid TeamId { get; set; }
    public Team? Team { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }
    public ProjectQuota Quota { get; set; } = new();

    // Usage counters, kept in step with the apps by every admission (in the same transaction, under
    // the team's row lock) so that admission reads two rows instead of summing every app.
    // Housekeeping recomputes them from the apps as a safety net.
    public long UsedMemoryMiB { get; set; }
    public long UsedCpuMillicores { get; set; }
    public long UsedInstances { get; set; }
    public long UsedApps { get; set; }
}

/// <summary>A project's share of its team's quota; null dimensions are bounded by the team only.</summary>
public sealed class ProjectQuota
{
    public long? MemoryMiB { get; set; }
    public long? CpuMillicores { get; set; }
    public long? Instances { get; set; }
    public long? Apps { get; set; }
}

/// <summary>A role on a whole team (ProjectId null) or on one project of it.</summary>
public sealed class Membership
{
    public Guid Id { get; set; }
    public required string UserId { get; set; }
    public PlatformUser? User { get; set; }
    public Guid TeamId { get; set; }
    public Team? Team { get; set; }
    public Guid? ProjectId { get; set; }
    public Project? Project { get; set; }
    public Role Role { get; set; }
    public DateTime CreatedAt { get; set; }
}

public sealed class App
{
    public Guid Id { get; set; }
    public Guid ProjectId { get; set; }
    public Project? Project { get; set; }
    public required string Name { get; set; }
    /// <summary>
    /// The first label of its host name (<see cref="Names.HostLabel"/>), unique platform-wide: the unique index is
    /// what settles two creates racing for one host in different teams. Null only for apps older than the column
    /// that spelled a host an older app already had.
    /// </summary>
    public string? Host { get; set; }
    public string? Image { get; set; }
    /// <summary>Built from its own git repository (created without an image); its builds set <see cref="Image"/>.</summary>
    public bool FromSource { get; set; }
    public bool HasRepository => (FromSource || Image is null) && SourceUrl is null;
    /// <summary>A repository hosted elsewhere (http(s) or ssh) built on its webhook's push events; null for the platform's own git.</summary>
    public string? SourceUrl { get; set; }
    /// <summary>The branch whose pushes build and deploy.</summary>
    public string Branch { get; set; } = "main";
    /// <summary>Where the Dockerfile is, relative to the repository's root.</summary>
    public string DockerfilePath { get; set; } = "Dockerfile";
    /// <summary>The webhook secret, protected with the Api's data-protection keys (HMAC needs it in clear when checking).</summary>
    public string? WebhookSecret { get; set; }
    /// <summary>Whose rights webhook builds use to push the image: the person who last set the source.</summary>
    public string? SourceSetBy { get; set; }
    public int Instances { get; set; }
    public int MemoryMiB { get; set; }
    public int CpuMillicores { get; set; }
    public int Port { get; set; }
    public Dictionary<string, string> Env { get; set; } = [];
    /// <summary>The path an HTTP probe asks when it names none; null: not set (the default readiness probe is then TCP).</summary>
    public string? HealthCheckPath { get; set; }
    /// <summary>The readiness probe as set (null: the default, Apps/Probes); agents run it and only Ready instances are routed.</summary>
    public Platform.Contracts.ProbeSpec? ReadinessProbe { get; set; }
    /// <summary>The liveness probe (null: off); failing it restarts the instance.</summary>
    public Platform.Contracts.ProbeSpec? LivenessProbe { get; set; }
    /// <summary>Seconds between SIGTERM and SIGKILL when an instance stops.</summary>
    public int StopGraceSeconds { get; set; } = 10;
    /// <summary>A rollout whose new instances are not all Ready this many seconds after it started is rolled back.</summary>
    public int ProgressDeadlineSeconds { get; set; } = 120;
    /// <summary>The router redirects plain HTTP to HTTPS for the app's hosts that have a certificate.</summary>
    public bool HttpsRedirect { get; set; } = true;
    /// <summary>HTTPS answers carry Strict-Transport-Security.</summary>
    public bool Hsts { get; set; }
    /// <summary>
    /// What the app ran when its last rollout succeeded (image, env, limits, port as JSON), the target of an
    /// automatic rollback; null until a rollout of it succeeded.
    /// </summary>
    public string? LastGoodSpec { get; set; }
    /// <summary>Bumped whenever what an instance runs changes (image, env, port, memory, CPU): instances of older generations are replaced.</summary>
    public int Generation { get; set; } = 1;
    /// <summary>Why the scheduler could not (fully) place the app, for people; null when it could.</summary>
    public string? SchedulingMessage { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
}

/// <summary>A build of an app's commit into an image (BuildJob), from Queued to Succeeded, Failed or Cancelled.</summary>
public sealed class Build
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    public int Number { get; set; }
    public required string Commit { get; set; }
    public required string State { get; set; }
    public string? Reason { get; set; }
    public string? ImageDigest { get; set; }
    public string? CreatedBy { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    /// <summary>What started it: push (platform git), webhook, api (rebuild) or retry.</summary>
    public string Trigger { get; set; } = "push";
    /// <summary>The repository cloned for a webhook build (the app's source URL then); null for the platform's own git.</summary>
    public string? Source { get; set; }
    /// <summary>Written every few seconds by the job running it: a Running build whose heartbeat stopped lost its Api.</summary>
    public DateTime? HeartbeatAt { get; set; }
    public bool CancelRequested { get; set; }
    /// <summary>How many times it was started (a build whose Api died is started again once).</summary>
    public int Attempts { get; set; }
    /// <summary>The Api replica (its <c>Platform:ReplicaName</c>) that claimed the build last: at start, a replica recovers only its own.</summary>
    public string? ClaimedBy { get; set; }
}

/// <summary>A version of an app: the image it ran from then on, and where that came from (a build, an image, a rollback).</summary>
public sealed class Release
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    public int Version { get; set; }
    /// <summary>The image reference, pinned to a digest where the registry knew it.</summary>
    public required string Image { get; set; }
    public string? Commit { get; set; }
    public int? BuildNumber { get; set; }
    public required string Description { get; set; }
    public string? CreatedBy { get; set; }
    public DateTime CreatedAt { get; set; }
    /// <summary>Set when the rollout of this release failed (its progress deadline passed, or it was cancelled): why.</summary>
    public string? FailureReason { get; set; }
}

/// <summary>
/// One change of what an app's instances are made of, as it rolls out: generation <see cref="Generation"/> replaces
/// the previous one, gated on readiness, until it is Ready in full (Succeeded) or its deadline passes (RolledBack, or
/// Failed when there was nothing good to go back to) or someone cancels it (Cancelled, rolled back too). Kept in the
/// database so a rollout survives an Api restart; the newest per app is the current one.
/// </summary>
public sealed class Rollout
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    public int Generation { get; set; }
    /// <summary>The release it rolls out (null for a change of env, limits or port alone).</summary>
    public int? ReleaseVersion { get; set; }
    /// <summary>Progressing, Succeeded, RolledBack, Cancelled or Failed.</summary>
    public required string State { get; set; }
    /// <summary>What happened, in words ("rolled back to v3: readiness: connection refused on :8080 (3 of 3)").</summary>
    public string? Message { get; set; }
    /// <summary>A rollback's own rollout names the generation it undid.</summary>
    public int? RollbackOf { get; set; }
    public DateTime StartedAt { get; set; }
    public DateTime DeadlineAt { get; set; }
    public DateTime? FinishedAt { get; set; }
}

/// <summary>
/// A custom domain of an app: the host (unique platform-wide), where its certificate comes from (ACME or uploaded)
/// and the certificate served, as state a controller moves along (Pending → Issuing → Ready | Failed, renewed before
/// it expires). The key is kept protected with the Api's data-protection keys.
/// </summary>
public sealed class CustomDomain
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    /// <summary>Lower case, no trailing dot (<see cref="Platform.Contracts.DomainNames.Normalize"/>).</summary>
    public required string Host { get; set; }
    /// <summary>Pending, Issuing, Ready or Failed (<see cref="Platform.Contracts.DomainStates"/>).</summary>
    public string State { get; set; } = Platform.Contracts.DomainStates.Pending;
    /// <summary>What the last step said, for people (the CA's problem detail when it failed).</summary>
    public string? Message { get; set; }
    /// <summary>acme or uploaded.</summary>
    public string Source { get; set; } = "acme";
    /// <summary>The chain served for the host (PEM, leaf first); null until there is one.</summary>
    public string? CertificatePem { get; set; }
    /// <summary>The certificate's private key (PEM), protected with the data-protection keys.</summary>
    public string? KeyPem { get; set; }
    public DateTime? NotAfter { get; set; }
    /// <summary>When the issuer acts on it next (first order, retry after a failure, renewal); null: nothing to do.</summary>
    public DateTime? NextAttemptAt { get; set; }
    /// <summary>Failed attempts in a row (the back-off grows with them); 0 after a success.</summary>
    public int Failures { get; set; }
    /// <summary>The replica working on it and until when (an Issuing domain whose lease ran out is taken over).</summary>
    public string? LeaseHolder { get; set; }
    public DateTime? LeaseUntil { get; set; }
    public string? CreatedBy { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
}

/// <summary>The certificate the router serves for every app host under the platform's apps domain (a wildcard a platform admin uploads); one row, id "apps".</summary>
public sealed class IngressCertificate
{
    /// <summary>The id of the apps domain's certificate (the only row).</summary>
    public const string Apps = "apps";
    public required string Id { get; set; }
    public required string CertificatePem { get; set; }
    /// <summary>Protected with the data-protection keys.</summary>
    public required string KeyPem { get; set; }
    public DateTime NotAfter { get; set; }
    public DateTime UpdatedAt { get; set; }
}

/// <summary>
/// What the router answered for one app in one minute, as one Api replica counted it: requests by status class
/// and a latency histogram. Each replica writes only its own rows (the key has its <see cref="Replica"/>), so
/// replicas never contend; readers sum them. No foreign key: a deleted app's rows age out with the rest.
/// </summary>
public sealed class AppRequestMinute
{
    public Guid AppId { get; set; }
    /// <summary>The minute's start (UTC).</summary>
    public DateTime Minute { get; set; }
    /// <summary>The replica that counted (a fresh id per Api process).</summary>
    public Guid Replica { get; set; }
    public long Status1xx { get; set; }
    public long Status2xx { get; set; }
    public long Status3xx { get; set; }
    public long Status4xx { get; set; }
    public long Status5xx { get; set; }
    /// <summary>Requests per latency bucket, the bounds of <c>RequestStats.BucketBoundsMs</c> and one past the last.</summary>
    public List<long> Latency { get; set; } = [];
}

/// <summary>An ACME http-01 challenge being answered: any router replica serves <c>/.well-known/acme-challenge/{token}</c> from this row.</summary>
public sealed class AcmeChallenge
{
    public required string Token { get; set; }
    public required string KeyAuthorization { get; set; }
    public required string Host { get; set; }
    public DateTime ExpiresAt { get; set; }
}

/// <summary>Something that happened to an app, for people: rollout started, instance ready, probe failed, rolled back, OOM, crash loop.</summary>
public sealed class AppEvent
{
    public long Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    public DateTime At { get; set; }
    /// <summary>RolloutStarted, RolloutSucceeded, RolledBack, RolloutCancelled, RolloutFailed, InstanceReady, ProbeFailed, Unhealthy, OOMKilled, CrashLoop.</summary>
    public required string Kind { get; set; }
    public required string Message { get; set; }
    public int? Generation { get; set; }
    public Guid? InstanceId { get; set; }
}

/// <summary>
/// One placed replica of an app: the scheduler writes node, image digest and limits; the node's agent
/// reports state, restarts, exit, host port and usage. Removing the row stops the container.
/// </summary>
public sealed class Instance
{
    public Guid Id { get; set; }
    public Guid AppId { get; set; }
    public App? App { get; set; }
    public Guid NodeId { get; set; }
    public Node? Node { get; set; }
    public int Generation { get; set; }
    /// <summary>The repository in the platform registry and the manifest digest the tag resolved to at placement.</summary>
    public required string ImageRepository { get; set; }
    public required string ImageDigest { get; set; }
    public int MemoryMiB { get; set; }
    public int CpuMillicores { get; set; }
    public string State { get; set; } = InstanceStates.Pending;
    public int Restarts { get; set; }
    public int? ExitCode { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }
    public int? HostPort { get; set; }
    public long UsedCpuMillicores { get; set; }
    public long UsedMemoryBytes { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
}

public sealed class PersonalAccessToken
{
    public Guid Id { get; set; }
    public required string UserId { get; set; }
    public PlatformUser? User { get; set; }
    public required string Name { get; set; }
    /// <summary>The first characters of the token, shown in lists so a person can tell tokens apart.</summary>
    public required string Prefix { get; set; }
    /// <summary>SHA-256 of the whole token (tokens are 256-bit random, so a fast hash is enough).</summary>
    public required string Hash { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime ExpiresAt { get; set; }
    public DateTime? RevokedAt { get; set; }
    public DateTime? LastUsedAt { get; set; }
}

public sealed class NodeJoinToken
{
    public Guid Id { get; set; }
    public required string Hash { get; set; }
    public required string CreatedBy { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime ExpiresAt { get; set; }
    public DateTime? UsedAt { get; set; }
    public string? UsedByNode { get; set; }
}

public sealed class Node
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public required string ClientId { get; set; }
    public DateTime JoinedAt { get; set; }
    public DateTime? LastHeartbeatAt { get; set; }
    /// <summary>Where the router reaches the node's host ports (Agent:Address): given at join, never changed by heartbeats.</summary>
    public string? Address { get; set; }
    public string? AgentVersion { get; set; }
    public long CapacityMemoryMiB { get; set; }
    public long CapacityCpuMillicores { get; set; }
    public long AllocatableMemoryMiB { get; set; }
    public long AllocatableCpuMillicores { get; set; }
    public long UsedMemoryMiB { get; set; }
    public long UsedCpuMillicores { get; set; }
    public int RunningInstances { get; set; }
    /// <summary>Bumped on every change to the node's desired instances; agents long-poll for a newer one.</summary>
    public long Revision { get; set; }
    /// <summary>Where the Api reaches the agent's control endpoint (logs), and the key it presents there; both reported by the agent.</summary>
    public int? ControlPort { get; set; }
    /// <summary>The control key protected with the Api's data-protection keys (Api.Nodes.NodeControlKeys), never in clear.</summary>
    public string? ProtectedControlKey { get; set; }
}

public sealed class AuditEvent
{
    public long Id { get; set; }
    public DateTime At { get; set; }
    public string? ActorId { get; set; }
    public string? ActorEmail { get; set; }
    public required string Action { get; set; }
    public Guid? TeamId { get; set; }
    /// <summary>What the change was made to, by kind and name (<c>app acme/web/shop</c>, <c>member bob@example.com</c>, <c>token 3f…</c>); never a secret.</summary>
    public required string Target { get; set; }
    /// <summary>The request's path (before issue 12 this was all <see cref="Target"/> said).</summary>
    public string? RequestPath { get; set; }
    public required string Outcome { get; set; }
    public int Status { get; set; }
}

/// <summary>A setting of the whole installation, written once (the shared data folder's id, <c>storage-id</c>).</summary>
public sealed class ClusterSetting
{
    public required string Key { get; set; }
    public required string Value { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>
/// An Api replica as it last reported itself (every few seconds): which singleton roles it holds under PostgreSQL
/// advisory locks, whether it runs builds. A replica that stopped reporting is shown as gone and its row aged out.
/// </summary>
public sealed class ApiReplica
{
    /// <summary>A fresh id per Api process.</summary>
    public Guid Id { get; set; }
    /// <summary>Host name and process id, for people.</summary>
    public required string Name { get; set; }
    public DateTime StartedAt { get; set; }
    public DateTime SeenAt { get; set; }
    /// <summary>The roles it holds, comma-separated (scheduler, rollouts).</summary>
    public string Roles { get; set; } = "";
    public int BuildWorkers { get; set; }
}

