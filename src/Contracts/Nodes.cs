using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Nodes: joining, heartbeats and the list platform admins read (`/nodes`).

public sealed record JoinTokenResponse(string Token, DateTime ExpiresAt);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateJoinTokenRequest(int? ExpiresInHours);

/// <summary>
/// The node's address (where the router and the Api reach it) is given once, here: heartbeats cannot
/// move it, so a compromised node cannot redirect traffic meant for another address to itself.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NodeJoinRequest(string? JoinToken, string? Name, string? Address = null);

public sealed record NodeJoinResponse(string NodeName, string ClientId, string ClientSecret, string TokenEndpoint);

public sealed record NodeResponse(
    string Name, DateTime JoinedAt, DateTime? LastHeartbeatAt, string State, string? Address, string? AgentVersion,
    NodeResources Capacity, NodeResources Allocatable, NodeResources Used, int RunningInstances);

public sealed record NodeResources(long MemoryMiB, long CpuMillicores);

/// <summary>
/// What an agent reports every few seconds: who it is, what it has, what it uses. <c>Address</c> must
/// be the one the node joined with (or absent); another one is refused.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NodeHeartbeat(string? Address, string? AgentVersion, NodeResources? Capacity, NodeResources? Allocatable, NodeResources? Used, int RunningInstances,
    int? ControlPort = null, string? ControlKey = null);

public sealed record NodeHeartbeatResponse(string NodeName, int HeartbeatSeconds);
