using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>The team's images as the Portal lists them: repositories, tags, digests and sizes, from the registry's metadata.</summary>
public static class ImagesApi
{
    public static RouteGroupBuilder MapImagesApi(this RouteGroupBuilder api)
    {
        api.MapGet("/teams/{team}/images", ListAsync).WithName("images.list");
        return api;
    }

    private static async Task<Results<Ok<Page<ImageRepositoryResponse>>, ProblemHttpResult>> ListAsync(
        string team, int? limit, string? after, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var a = t.Value!;
        var query = db.RegistryRepositories.AsNoTracking().Where(r => r.TeamId == a.Team.Id);
        if (a.VisibleProjectIds is { } visible)
            query = query.Where(r => r.ProjectId != null && visible.Contains(r.ProjectId.Value));
        if (after is not null) query = query.Where(r => string.Compare(r.Name, after) > 0);
        var take = Paging.Take(limit);
        var repos = await query.OrderBy(r => r.Name).Take(take + 1)
            .Select(r => new { r.Id, r.Name, Project = db.Projects.Where(x => x.Id == r.ProjectId).Select(x => x.Name).FirstOrDefault() })
            .ToListAsync(ct);
        var (items, next) = Paging.Split(repos, take, r => r.Name);
        var ids = items.Select(r => r.Id).ToList();
        // Size of a tag: its manifest plus the blobs the manifest names.
        var tags = await db.RegistryTags.AsNoTracking().Where(x => ids.Contains(x.RepositoryId))
            .Select(x => new
            {
                x.RepositoryId, x.Name, x.ManifestDigest, x.UpdatedAt,
                Size = db.RegistryManifests.Where(m => m.RepositoryId == x.RepositoryId && m.Digest == x.ManifestDigest).Select(m => m.Size).FirstOrDefault()
                    + db.RegistryManifestReferences
                        .Where(r => !r.IsManifest && db.RegistryManifests.Any(m => m.Id == r.ManifestId && m.RepositoryId == x.RepositoryId && m.Digest == x.ManifestDigest))
                        .Join(db.RegistryBlobs, r => r.Digest, b => b.Digest, (r, b) => b.Size).Sum(),
            })
            .ToListAsync(ct);
        var byRepo = tags.ToLookup(x => x.RepositoryId);
        return TypedResults.Ok(new Page<ImageRepositoryResponse>(items.Select(r => new ImageRepositoryResponse(r.Name, r.Project ?? "",
            byRepo[r.Id].OrderBy(x => x.Name).Select(x => new ImageTagResponse(x.Name, x.ManifestDigest, x.Size, x.UpdatedAt)).ToList())).ToList(), next));
    }
}
