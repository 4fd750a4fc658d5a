using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Builds of an app (`…/apps/{app}/builds`).

/// <summary>A build of an app's commit (Queued → Running → Succeeded | Failed | Cancelled), with the image it made.</summary>
public sealed record BuildResponse(
    int Number, string Commit, string State, string? Reason, string? ImageDigest, DateTime CreatedAt, DateTime? StartedAt, DateTime? FinishedAt,
    string Trigger = "push", string? CreatedBy = null, bool CancelRequested = false);

/// <summary>Start a build: of a commit (40 hex digits), or of the head of the app's branch when absent.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateBuildRequest(string? Commit);
