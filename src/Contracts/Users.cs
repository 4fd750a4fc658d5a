using System.Text.Json.Serialization;

namespace Platform.Contracts;

// People: platform users and the caller's own roles (`/users`, `/me`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateUserRequest(string? Email, string? Password, bool PlatformAdmin = false);

public sealed record UserResponse(string Id, string Email, bool PlatformAdmin, DateTime CreatedAt, bool LockedOut);

public sealed record MembershipResponse(string Team, string? Project, string Role);

public sealed record MeResponse(string Id, string Email, bool PlatformAdmin, IReadOnlyList<MembershipResponse> Roles);
