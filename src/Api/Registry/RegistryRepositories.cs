using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Serialises repository creation within one Api host: a push uploads its layers in parallel, and each
/// upload would create the repository. A singleton of the host's container, never static, so two
/// hosts in one process (tests) do not wait on each other; replicas race harmlessly on the unique name.
/// </summary>
public sealed class RepositoryCreationGate
{
    public SemaphoreSlim Semaphore { get; } = new(1, 1);
}

/// <summary>
/// What the spec's sections share once the caller is authorised: repositories (found, or created on
/// first push), which blobs each repository may read (its links), and the catalog. Bytes live in
/// <see cref="IBlobStore"/>; these rows say who may read them. Concurrent pushes of the same content
/// may race: a unique-key violation means the other request stored the same row first.
/// </summary>
public sealed class RegistryRepositories(PlatformDbContext db, RepositoryCreationGate gate, TimeProvider clock)
{
    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    public Task<RegistryRepository?> FindAsync(RegistryNames.Parsed name, CancellationToken ct) =>
        db.RegistryRepositories.FirstOrDefaultAsync(r => r.Name == name.Name, ct);

    /// <summary>The repository, created on first use; the project of a team repository exists (the caller was authorised against it).</summary>
    public async Task<RegistryRepository> GetOrCreateAsync(RegistryNames.Parsed name, CancellationToken ct)
    {
        var repo = await FindAsync(name, ct);
        if (repo is not null) return repo;
        await gate.Semaphore.WaitAsync(ct);
        try
        {
            repo = await FindAsync(name, ct);
            if (repo is not null) return repo;
            Guid? teamId = null, projectId = null;
            if (!name.IsLibrary)
            {
                var project = await db.Projects.Where(p => p.Name == name.Project && p.Team!.Name == name.Team)
                    .Select(p => new { p.Id, p.TeamId }).FirstAsync(ct);
                (teamId, projectId) = (project.TeamId, project.Id);
            }
            repo = new RegistryRepository { Name = name.Name, TeamId = teamId, ProjectId = projectId, CreatedAt = Now };
            db.RegistryRepositories.Add(repo);
            try
            {
                await db.SaveChangesAsync(ct);
                return repo;
            }
            catch (DbUpdateException)
            {
                db.ChangeTracker.Clear();   // created by a push on another replica
                return await db.RegistryRepositories.FirstAsync(r => r.Name == name.Name, ct);
            }
        }
        finally
        {
            gate.Semaphore.Release();
        }
    }

    /// <summary>Whether the repository may read the blob (a link exists); the bytes may still be missing from the store.</summary>
    public Task<bool> LinkedAsync(Guid repositoryId, string digest, CancellationToken ct) =>
        db.RegistryRepositoryBlobs.AnyAsync(l => l.RepositoryId == repositoryId && l.Digest == digest, ct);

    /// <summary>Records verified content (a blob or a manifest's bytes) and links it to the repository.</summary>
    /// <remarks>
    /// Called before the bytes are moved into place. The blob's row is touched (or created), so the collector — which
    /// deletes only rows older than its grace period, and the file in the same transaction as the row — either
    /// finished deleting before this (the file this upload moves in afterwards survives) or leaves the blob alone.
    /// </remarks>
    public async Task CommitBlobAsync(RegistryRepository repo, string digest, long size, CancellationToken ct)
    {
        if (await db.RegistryBlobs.Where(b => b.Digest == digest)
                .ExecuteUpdateAsync(s => s.SetProperty(b => b.CreatedAt, Now).SetProperty(b => b.Size, size), ct) == 0)
        {
            db.RegistryBlobs.Add(new RegistryBlob { Digest = digest, Size = size, CreatedAt = Now });
            await SaveIgnoringRaceAsync(ct);
        }
        await LinkAsync(repo.Id, digest, ct);
    }

    public async Task LinkAsync(Guid repositoryId, string digest, CancellationToken ct)
    {
        var link = await db.RegistryRepositoryBlobs.FirstOrDefaultAsync(l => l.RepositoryId == repositoryId && l.Digest == digest, ct);
        if (link is not null)
        {
            link.CreatedAt = Now;   // refreshed: a push that reuses content is protected from the collector's grace period
            await db.SaveChangesAsync(ct);
            return;
        }
        db.RegistryRepositoryBlobs.Add(new RegistryRepositoryBlob { RepositoryId = repositoryId, Digest = digest, CreatedAt = Now });
        await SaveIgnoringRaceAsync(ct);
    }

    /// <summary>Saves; a unique-key violation means a concurrent request stored the same row first.</summary>
    public async Task SaveIgnoringRaceAsync(CancellationToken ct)
    {
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
        }
    }

    /// <summary><c>GET /v2/_catalog</c>: repository names in order, <c>n</c>/<c>last</c> paging with a <c>Link</c> to the next page.</summary>
    public async Task<IResult> CatalogAsync(HttpContext http, CancellationToken ct)
    {
        if (!RegistryResults.TryPage(http, out var n, out var last)) return RegistryErrors.PaginationInvalid();
        var query = db.RegistryRepositories.AsQueryable();
        if (last is not null) query = query.Where(r => string.Compare(r.Name, last) > 0);
        var names = await query.OrderBy(r => r.Name).Select(r => r.Name).Take(n + 1).ToListAsync(ct);
        RegistryResults.LinkNext(http, names, n, $"/v2/_catalog?n={n}");
        return Results.Json(new { repositories = names });
    }
}
