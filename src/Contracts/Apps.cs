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
