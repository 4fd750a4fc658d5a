using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Teams and the roles granted in a team or one of its projects (`/teams`, `…/members`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateTeamRequest(string? Name);

public sealed record TeamResponse(string Name, DateTime CreatedAt, string? MyRole, TeamQuotaResponse Quota);

public sealed record TeamSummary(string Name, DateTime CreatedAt, string? MyRole);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record MemberRequest(string? Role);

public sealed record MemberResponse(string Email, string Role, string? Project);
