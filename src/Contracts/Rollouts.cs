namespace Platform.Contracts;

// An app's rollout (`…/apps/{app}/rollout`) and events (`…/apps/{app}/events`).

/// <summary>How many instances of one side of a rollout are Ready, out of how many.</summary>
public sealed record RolloutSide(int Ready, int Total);

/// <summary>
/// The app's current (newest) rollout: its generation replacing the previous ones. <c>state</c> is Progressing,
/// Succeeded, RolledBack, Cancelled or Failed; <c>new</c> counts its generation's instances (total: as many as the app
/// wants), <c>old</c> the previous generations' still placed. <c>pace</c>, while it progresses, says why it goes slower
/// than a full surge ("rolling out one at a time: the quota of team acme leaves room for 1 new instance(s) beside the
/// old ones"); null when every new instance could be placed beside the old ones.
/// </summary>
public sealed record RolloutResponse(
    int Generation, string State, string? Message, int? Release, int? RollbackOf, DateTime StartedAt, DateTime DeadlineAt,
    DateTime? FinishedAt, RolloutSide New, RolloutSide Old, string? Pace = null);

/// <summary>Something that happened to an app: <c>kind</c> RolloutStarted, RolloutSucceeded, RolledBack, RolloutCancelled, RolloutFailed, InstanceReady, ProbeFailed, Unhealthy, OOMKilled or CrashLoop.</summary>
public sealed record AppEventResponse(long Id, DateTime At, string Kind, string Message, int? Generation, string? Instance);
