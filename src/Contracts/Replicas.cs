namespace Platform.Contracts;

/// <summary>
/// An Api replica as platform admins see it (<c>GET /api/v1/replicas</c>): <c>state</c> Up, or Gone when it has not
/// reported for 15 s; <c>roles</c> the singletons it holds (scheduler, rollouts); <c>self</c> marks the replica that answered.
/// </summary>
public sealed record ReplicaResponse(string Id, string Name, string State, IReadOnlyList<string> Roles, int BuildWorkers,
    DateTime StartedAt, DateTime SeenAt, bool Self);
