using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Data;

namespace Platform.Api.Infrastructure;

/// <summary>An Api that must not start as configured, with the reason in words (the process ends with it).</summary>
public sealed class StartRefusedException(string message) : Exception(message)
{
    /// <summary>
    /// Whether this process is the Api itself, which then ends with the reason and exit status 2 instead of an unhandled
    /// exception's stack and an abort. Hosted by another program (WebApplicationFactory in tests), the exception goes on
    /// to that program.
    /// </summary>
    public static bool EndsProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(StartRefusedException).Assembly;

    /// <summary>Says why the Api does not start, on standard error, and gives the exit status (2).</summary>
    public int Exit()
    {
        Console.Error.WriteLine($"The Api did not start: {Message}");
        return 2;
    }
}

/// <summary>
/// What the Api checks about its data folder before it serves anything:
/// <list type="bullet">
/// <item>On SQLite, one Api process per data folder: an exclusive lock on <c>{DataDir}/api.lock</c>, held for the
/// process's life (the kernel drops it when the process dies, however it dies). A second Api on the same folder stops
/// with the reason instead of sharing a database file SQLite would serialise and a job storage two schedulers would run.</item>
/// <item>On any provider, the folder is the one the database expects: the first start writes an id into the database
/// (<c>cluster_settings</c>) and the folder (<c>{DataDir}/storage-id</c>); a replica whose folder holds another id, or
/// none while the database already has one, is not on the shared folder (it would serve a registry with no blobs, a
/// git host with no repositories) and stops.</item>
/// </list>
/// </summary>
public sealed class DataFolderGuard(DataLayout layout, IOptions<PlatformOptions> options, TimeProvider clock) : IDisposable
{
    public const string StorageIdKey = "storage-id";
    private FileStream? _lock;

    public string LockFile => Path.Combine(layout.Root, "api.lock");
    public string StorageIdFile => Path.Combine(layout.Root, "storage-id");

    /// <summary>On SQLite, takes the data folder's lock for this process's life, or refuses to start.</summary>
    public void LockSqlite()
    {
        if (options.Value.Database.Provider != DatabaseProvider.Sqlite || _lock is not null) return;
        Directory.CreateDirectory(layout.Root);
        try
        {
            // FileShare.None is an exclusive flock(2) on Linux: per open file, released with the process.
            _lock = new FileStream(LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new StartRefusedException(
                $"Another Api process is using the data folder {layout.Root} (it holds {LockFile}). SQLite serves one Api process: "
                + "stop the other one first, or run several replicas on PostgreSQL with a shared data folder (docs/operations.md, \"Several Api replicas\").");
        }
    }

    /// <summary>Checks the folder's id against the database's (after the migrations), or refuses to start.</summary>
    public async Task CheckStorageIdAsync(IServiceProvider services, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        await CheckStorageIdAsync(scope.ServiceProvider.GetRequiredService<PlatformDbContext>(), services.GetRequiredService<Registry.IBlobStore>(), ct);
    }

    private async Task CheckStorageIdAsync(PlatformDbContext db, Registry.IBlobStore blobs, CancellationToken ct)
    {
        var recorded = await db.ClusterSettings.AsNoTracking().FirstOrDefaultAsync(s => s.Key == StorageIdKey, ct);
        var created = false;
        if (recorded is null)
        {
            // The first start of this installation (or the first since the check exists): this replica's folder is the
            // shared one. Two replicas starting at once both try; the database keeps one id and both read it back.
            var mine = File.Exists(StorageIdFile) ? (await File.ReadAllTextAsync(StorageIdFile, ct)).Trim() : Guid.NewGuid().ToString("N");
            db.ClusterSettings.Add(new ClusterSetting { Key = StorageIdKey, Value = mine, CreatedAt = clock.GetUtcNow().UtcDateTime });
            try
            {
                await db.SaveChangesAsync(ct);
                created = true;
            }
            catch (DbUpdateException)
            {
                db.ChangeTracker.Clear();
            }
            recorded = await db.ClusterSettings.AsNoTracking().FirstAsync(s => s.Key == StorageIdKey, ct);
        }

        var expected = recorded.Value;
        if (!File.Exists(StorageIdFile))
        {
            // Only the replica that just recorded the id may write it into an unmarked folder; another one waits a little
            // for the first replica's write to show on the shared folder (both starting together), then refuses.
            if (created) await WriteIdAsync(expected, ct);
            else
            {
                var waited = System.Diagnostics.Stopwatch.StartNew();   // real time: another process's write is awaited
                while (!File.Exists(StorageIdFile) && waited.Elapsed < TimeSpan.FromSeconds(10) && recorded.CreatedAt > clock.GetUtcNow().UtcDateTime.AddMinutes(-1))
                    await Task.Delay(200, ct);
                if (!File.Exists(StorageIdFile))
                    throw new StartRefusedException(
                        $"The data folder {layout.Root} is not the one this database's other replicas use: it has no storage-id file, and the database "
                        + $"expects the folder marked {expected}. Give every replica the same shared folder (NFS) as Platform:DataDir (docs/operations.md, "
                        + "\"Several Api replicas\"); a replica with a folder of its own would serve no registry blobs, git repositories or build logs.");
            }
        }
        var found = (await File.ReadAllTextAsync(StorageIdFile, ct)).Trim();
        if (found != expected)
            throw new StartRefusedException(
                $"The data folder {layout.Root} belongs to another installation: its storage-id file says {found}, this database expects {expected}. "
                + "Point Platform:DataDir at the folder this database was used with (shared by every replica), or this replica at that folder's database.");
        // Blobs in a bucket: the bucket is marked the same way (Registry/S3BlobStore.cs).
        if (blobs is Registry.S3BlobStore bucket)
            await bucket.CheckMarkerAsync(expected, await db.RegistryBlobs.AnyAsync(ct), ct);
    }

    private async Task WriteIdAsync(string id, CancellationToken ct)
    {
        var temp = StorageIdFile + "." + Guid.NewGuid().ToString("N")[..8];
        await File.WriteAllTextAsync(temp, id + "\n", ct);
        try { File.Move(temp, StorageIdFile, overwrite: false); }
        catch (IOException) { File.Delete(temp); }   // written meanwhile: the comparison below judges it
    }

    public void Dispose() => _lock?.Dispose();
}
