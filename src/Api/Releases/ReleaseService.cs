using Microsoft.EntityFrameworkCore;
using Platform.Api.Registry;
using Platform.Data;

namespace Platform.Api.Releases;

/// <summary>
/// Records a release each time what an app runs changes to a new image: a successful build, an image
/// deployed by hand (create or PATCH), a rollback. Image tags are pinned to the digest they named then,
/// so rolling back to a release runs the same bytes even after the tag moved.
/// </summary>
public sealed class ReleaseService(PlatformDbContext db, ImageResolver images, TimeProvider clock)
{
    /// <summary>Adds the release to the context (saved with the caller's changes) and returns it.</summary>
    public async Task<Release> AddAsync(App app, string team, string image, string description, string? commit, int? build, string? userId, CancellationToken ct)
    {
        var pinned = image.Contains('@') ? image : (await images.ResolveAsync(image, team, ct)).Image is { } r ? $"{r.Repository}@{r.Digest}" : image;
        var version = (await db.Releases.Where(x => x.AppId == app.Id).MaxAsync(x => (int?)x.Version, ct) ?? 0) + 1;
        var release = new Release
        {
            Id = Guid.CreateVersion7(), AppId = app.Id, Version = version, Image = pinned, Commit = commit, BuildNumber = build,
            Description = description.Length > 256 ? description[..256] : description, CreatedBy = userId, CreatedAt = clock.GetUtcNow().UtcDateTime,
        };
        db.Releases.Add(release);
        return release;
    }
}
