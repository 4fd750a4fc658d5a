using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Wire records of the REST API (camelCase JSON). Requests refuse unknown members so that a typo in
// a field name is a 400 naming the field, not a silently ignored setting.

/// <summary>A page of a list; <see cref="Next"/> is the cursor for the following page, null at the end.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateUserRequest(string? Email, string? Password, bool PlatformAdmin = false);

public sealed record UserResponse(string Id, string Email, bool PlatformAdmin, DateTime CreatedAt, bool LockedOut);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateTokenRequest(string? Name, int? ExpiresInDays);

public sealed record CreatedTokenResponse(string Id, string Name, string Token, DateTime ExpiresAt);

public sealed record TokenResponse(string Id, string Name, string Prefix, DateTime CreatedAt, DateTime ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt);

public sealed record MembershipResponse(string Team, string? Project, string Role);

public sealed record MeResponse(string Id, string Email, bool PlatformAdmin, IReadOnlyList<MembershipResponse> Roles);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateTeamRequest(string? Name);


[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record TeamQuotaRequest(long? MemoryMiB, long? CpuMillicores, long? Instances, long? Apps, long? Projects, long? RegistryGiB, long? ConcurrentBuilds,
    BuildLimitsRequest? Build = null);

/// <summary>What one build of the team may use; an absent member keeps its value, 0 means the platform's default.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record BuildLimitsRequest(long? MemoryMiB, long? CpuMillicores, long? Pids, long? TimeoutSeconds);

/// <summary>The limits one build of the team runs under (the team's own or the platform's defaults).</summary>
public sealed record BuildLimitsResponse(long MemoryMiB, long CpuMillicores, long Pids, long TimeoutSeconds);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ProjectQuotaRequest(long? MemoryMiB, long? CpuMillicores, long? Instances, long? Apps);

/// <summary>A limit beside its current usage; a null limit means "bounded only by the enclosing scope".</summary>
public sealed record QuotaItem(long? Limit, long Used);

/// <summary>A team's limits and usage; <see cref="RegistryBytesUsed"/> is exact where <c>registryGiB.used</c> rounds up.</summary>
public sealed record TeamQuotaResponse(QuotaItem MemoryMiB, QuotaItem CpuMillicores, QuotaItem Instances, QuotaItem Apps, QuotaItem Projects, QuotaItem RegistryGiB, QuotaItem ConcurrentBuilds, long RegistryBytesUsed,
    BuildLimitsResponse? Build = null);

public sealed record ProjectQuotaResponse(QuotaItem MemoryMiB, QuotaItem CpuMillicores, QuotaItem Instances, QuotaItem Apps);

public sealed record TeamResponse(string Name, DateTime CreatedAt, string? MyRole, TeamQuotaResponse Quota);

public sealed record TeamSummary(string Name, DateTime CreatedAt, string? MyRole);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record MemberRequest(string? Role);

public sealed record MemberResponse(string Email, string Role, string? Project);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateProjectRequest(string? Name);

public sealed record ProjectResponse(string Name, string Team, DateTime CreatedAt, string? MyRole, ProjectQuotaResponse Quota);

public sealed record ProjectSummary(string Name, string Team, DateTime CreatedAt);

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
    string? WebhookSecret = null);

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
    string? WebhookSecret = null);

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
    string HealthCheckPath,
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
    string? WebhookSecret = null);

/// <summary>How many instances run out of how many are wanted, and why not all when they do not.</summary>
public sealed record AppStatus(int Running, int Desired, string? Message);

public sealed record AuditEventResponse(long Id, DateTime At, string? Actor, string Action, string? Team, string Target, string Outcome, int Status);

public sealed record JoinTokenResponse(string Token, DateTime ExpiresAt);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateJoinTokenRequest(int? ExpiresInHours);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NodeJoinRequest(string? JoinToken, string? Name);

public sealed record NodeJoinResponse(string NodeName, string ClientId, string ClientSecret, string TokenEndpoint);

public sealed record NodeResponse(
    string Name, DateTime JoinedAt, DateTime? LastHeartbeatAt, string State, string? Address, string? AgentVersion,
    NodeResources Capacity, NodeResources Allocatable, NodeResources Used, int RunningInstances);

public sealed record NodeResources(long MemoryMiB, long CpuMillicores);

/// <summary>What an agent reports every few seconds: who it is, what it has, what it uses.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NodeHeartbeat(string? Address, string? AgentVersion, NodeResources? Capacity, NodeResources? Allocatable, NodeResources? Used, int RunningInstances,
    int? ControlPort = null, string? ControlKey = null);

public sealed record NodeHeartbeatResponse(string NodeName, int HeartbeatSeconds);

/// <summary>Problem types (RFC 9457 <c>type</c>, relative references as DESIGN.md names them).</summary>
public static class ProblemTypes
{
    public const string QuotaExceeded = "quota-exceeded";
    public const string Validation = "validation";
    public const string Conflict = "conflict";
}

public sealed record ImageTagResponse(string Tag, string Digest, long Size, DateTime UpdatedAt);

/// <summary>A registry repository of a team with its tags (sizes are the manifest plus its blobs).</summary>
public sealed record ImageRepositoryResponse(string Name, string Project, IReadOnlyList<ImageTagResponse> Tags);
