using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Resolves an app's image reference against the platform registry: <c>[host[:port]/]name[:tag][@digest]</c>
/// to the repository and the manifest digest its instances will run. Only the team's own repositories
/// and <c>library/</c> are eligible: a team never runs another team's image, whatever it names.
/// </summary>
public sealed class ImageResolver(PlatformDbContext db)
{
    public sealed record Resolved(string Repository, string Digest);

    public sealed record Result(Resolved? Image, string? Problem);

    /// <summary>Splits a reference into repository, tag and digest (a leading registry host is dropped).</summary>
    public static (string Repository, string? Tag, string? Digest) Split(string reference)
    {
        string? digest = null;
        var at = reference.IndexOf('@');
        if (at >= 0) (reference, digest) = (reference[..at], reference[(at + 1)..]);
        var slash = reference.IndexOf('/');
        if (slash > 0)
        {
            var first = reference[..slash];
            if (first.Contains('.') || first.Contains(':') || first == "localhost") reference = reference[(slash + 1)..];
        }
        string? tag = null;
        var colon = reference.LastIndexOf(':');
        if (colon > reference.LastIndexOf('/')) (reference, tag) = (reference[..colon], reference[(colon + 1)..]);
        return (reference, tag ?? (digest is null ? "latest" : null), digest);
    }

    /// <summary>Null when <paramref name="reference"/> may be used by <paramref name="team"/>, else why not.</summary>
    public static string? Eligibility(string reference, string team)
    {
        var (repository, _, _) = Split(reference);
        if (RegistryNames.Parse(repository) is not { } parsed)
            return $"'{repository}' is not a repository of the platform registry ('{{team}}/{{project}}/{{app}}' or 'library/…').";
        if (!parsed.IsLibrary && parsed.Team != team)
            return $"'{repository}' belongs to another team: apps run images of their own team or of library/.";
        return null;
    }

    public async Task<Result> ResolveAsync(string reference, string team, CancellationToken ct)
    {
        if (Eligibility(reference, team) is { } problem) return new(null, problem);
        var (repository, tag, digest) = Split(reference);
        var repo = await db.RegistryRepositories.AsNoTracking().Where(r => r.Name == repository).Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
        if (repo is null) return new(null, $"Image '{reference}' was not found: push it to the platform registry first.");
        if (digest is null)
        {
            digest = await db.RegistryTags.AsNoTracking().Where(t => t.RepositoryId == repo && t.Name == tag)
                .Select(t => t.ManifestDigest).FirstOrDefaultAsync(ct);
            if (digest is null) return new(null, $"Image '{reference}' was not found: the repository has no tag '{tag}'.");
        }
        else if (!await db.RegistryManifests.AsNoTracking().AnyAsync(m => m.RepositoryId == repo && m.Digest == digest, ct))
        {
            return new(null, $"Image '{reference}' was not found: the repository has no manifest {digest}.");
        }
        return new(new Resolved(repository, digest), null);
    }
}
