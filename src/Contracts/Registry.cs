namespace Platform.Contracts;

// The team's images as the registry holds them (`/teams/{team}/images`).

public sealed record ImageTagResponse(string Tag, string Digest, long Size, DateTime UpdatedAt);

/// <summary>A registry repository of a team with its tags (sizes are the manifest plus its blobs).</summary>
public sealed record ImageRepositoryResponse(string Name, string Project, IReadOnlyList<ImageTagResponse> Tags);
