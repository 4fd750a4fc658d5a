namespace Platform.Contracts;

// The audit log (`/audit`, `/teams/{team}/audit`).

public sealed record AuditEventResponse(long Id, DateTime At, string? Actor, string Action, string? Team, string Target, string Outcome, int Status);
