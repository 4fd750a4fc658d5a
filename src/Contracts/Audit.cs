namespace Platform.Contracts;

// The audit log (`/audit`, `/teams/{team}/audit`).

/// <param name="Target">What the change was made to, by kind and name: <c>app acme/web/shop</c>, <c>member bob@example.com (team acme)</c>, <c>token {id} ({name})</c>.</param>
/// <param name="Path">The request's path.</param>
public sealed record AuditEventResponse(long Id, DateTime At, string? Actor, string Action, string? Team, string Target, string Outcome, int Status, string? Path);
