using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Personal access tokens (`/me/tokens`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateTokenRequest(string? Name, int? ExpiresInDays);

public sealed record CreatedTokenResponse(string Id, string Name, string Token, DateTime ExpiresAt);

public sealed record TokenResponse(string Id, string Name, string Prefix, DateTime CreatedAt, DateTime ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt);
