using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Projects of a team (`/teams/{team}/projects`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateProjectRequest(string? Name);

public sealed record ProjectResponse(string Name, string Team, DateTime CreatedAt, string? MyRole, ProjectQuotaResponse Quota);

public sealed record ProjectSummary(string Name, string Team, DateTime CreatedAt);
