namespace Platform.Data;

// Registry metadata. Blob and manifest bytes live in the blob store (content-addressed files under
// {DataDir}/registry); the database knows which repository may read which digest, tags, sizes and
// references, so listing, quotas and garbage collection never walk the file system.

/// <summary>A repository, <c>{team}/{project}/{app}[/…]</c> or <c>library/…</c> (TeamId null).</summary>
public sealed class RegistryRepository
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public Guid? TeamId { get; set; }
    public Guid? ProjectId { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>A stored blob (layer, config or manifest bytes), once per digest.</summary>
public sealed class RegistryBlob
{
    public required string Digest { get; set; }
    public long Size { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>A blob readable through a repository (uploaded, mounted or referenced there).</summary>
public sealed class RegistryRepositoryBlob
{
    public Guid RepositoryId { get; set; }
    public required string Digest { get; set; }
    public DateTime CreatedAt { get; set; }
}

public sealed class RegistryManifest
{
    public Guid Id { get; set; }
    public Guid RepositoryId { get; set; }
    public required string Digest { get; set; }
    public required string MediaType { get; set; }
    public long Size { get; set; }
    public string? ArtifactType { get; set; }
    /// <summary>The manifest this one refers to (OCI 1.1 <c>subject</c>), for the referrers API.</summary>
    public string? SubjectDigest { get; set; }
    /// <summary>The manifest's <c>annotations</c>, as JSON, for referrers descriptors.</summary>
    public string? AnnotationsJson { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>What a manifest points at: its config and layers, or the manifests of an index.</summary>
public sealed class RegistryManifestReference
{
    public Guid ManifestId { get; set; }
    public required string Digest { get; set; }
    public bool IsManifest { get; set; }
}

public sealed class RegistryTag
{
    public Guid RepositoryId { get; set; }
    public required string Name { get; set; }
    public required string ManifestDigest { get; set; }
    public DateTime UpdatedAt { get; set; }
}

/// <summary>A blob upload session; its bytes are in the blob store's upload area.</summary>
public sealed class RegistryUpload
{
    public Guid Id { get; set; }
    public Guid RepositoryId { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
    /// <summary>Bytes received so far, recorded while they stream in: uploads in flight count against the team's registryGiB.</summary>
    public long Bytes { get; set; }
}
