namespace Platform.Contracts;

// Releases of an app (`…/apps/{app}/releases`).

/// <summary>A version of an app: the image it ran from then on and where it came from.</summary>
public sealed record ReleaseResponse(
    int Version, string Image, string? Commit, int? Build, string Description, string? CreatedBy, DateTime CreatedAt, bool Current,
    /// <summary>Why its rollout failed (rolled back by itself or cancelled), or null.</summary>
    string? FailureReason = null);
