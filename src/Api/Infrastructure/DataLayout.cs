namespace Platform.Api.Infrastructure;

/// <summary>
/// What lives where under <c>Platform:DataDir</c>: the one place its paths are spelled, so a folder moves
/// (or is shared between replicas, docs/operations.md) by changing this type alone. A singleton made from
/// <see cref="PlatformOptions"/>; setup code that runs before the container exists uses <see cref="Of"/>.
/// </summary>
public sealed class DataLayout(string root, string? buildWork = null)
{
    public static DataLayout Of(PlatformOptions options) =>
        new(options.FullDataDir, options.Builds.WorkDir is "" ? null : options.Builds.WorkDir);

    /// <summary>The data folder, absolute.</summary>
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>
    /// The build account's folders (<see cref="Builds.BuildUser"/>): <c>Platform:Builds:WorkDir</c>, else
    /// <c>{Root}/build-work</c> when others may pass every folder down to the data folder (the account must reach
    /// it), else a folder of this data folder's own under /var/lib/platform.
    /// </summary>
    public string BuildWork { get; } = buildWork is not null ? Path.GetFullPath(buildWork) : DefaultBuildWork(Path.GetFullPath(root));

    private static string DefaultBuildWork(string root)
    {
        if (OperatingSystem.IsWindows() || PassableByOthers(root)) return Path.Combine(root, "build-work");
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(root)))[..12];
        return $"/var/lib/platform/build-work-{hash}";
    }

    /// <summary>Whether a user other than the owner may pass every existing folder from / down to <paramref name="path"/>.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static bool PassableByOthers(string path)
    {
        for (var dir = path; dir is not null; dir = Path.GetDirectoryName(dir))
            if (Directory.Exists(dir) && !File.GetUnixFileMode(dir).HasFlag(UnixFileMode.OtherExecute)) return false;
        return true;
    }

    /// <summary>The SQLite database (when SQLite is the provider).</summary>
    public string Database => Path.Combine(Root, "platform.db");

    /// <summary>Hangfire's SQLite storage (when SQLite is the provider).</summary>
    public string Jobs => Path.Combine(Root, "jobs.db");

    /// <summary>OIDC signing and encryption keys (PEM files).</summary>
    public string Keys => Path.Combine(Root, "keys");

    /// <summary>Data Protection's key ring (tokens, cookies, webhook secrets).</summary>
    public string DataProtectionKeys => Path.Combine(Keys, "dataprotection");

    /// <summary>The registry's content-addressed blobs and upload sessions.</summary>
    public string Registry => Path.Combine(Root, "registry");

    /// <summary>The bare repositories of apps built from source (git http-backend's project root).</summary>
    public string Git => Path.Combine(Root, "git");

    /// <summary>The platform's own git hooks (core.hooksPath of every push): tenants cannot write here.</summary>
    public string GitHooks => Path.Combine(Root, "git-hooks");

    /// <summary>The bare repository of one app.</summary>
    public string Repository(Guid app) => Path.Combine(Git, app.ToString("N") + ".git");

    /// <summary>Build logs.</summary>
    public string BuildLogs => Path.Combine(Root, "builds");

    public string BuildLog(Guid build) => Path.Combine(BuildLogs, build.ToString("N") + ".log");

    /// <summary>Scratch folders of running builds (checkout, runc state, buildah's temporary bundles).</summary>
    public string Scratch => Path.Combine(BuildWork, "scratch");

    /// <summary>
    /// The scratch folder of one attempt of a build: an attempt of its own, so a retried build never works in
    /// (nor is mistaken for) the folder its lost first attempt left.
    /// </summary>
    public string BuildScratch(Guid build, int attempt) => Path.Combine(Scratch, $"{ScratchPrefix}{build:N}-{attempt}");

    /// <summary>Every scratch folder on disk and the build it belongs to (<see cref="Guid.Empty"/> for a name no build has).</summary>
    public IEnumerable<(string Folder, Guid Build)> BuildScratchFolders()
    {
        if (!Directory.Exists(Scratch)) yield break;
        foreach (var dir in Directory.EnumerateDirectories(Scratch, ScratchPrefix + "*"))
        {
            var name = Path.GetFileName(dir)[ScratchPrefix.Length..];
            var id = name.Split('-')[0];
            yield return (dir, Guid.TryParseExact(id, "N", out var g) ? g : Guid.Empty);
        }
    }

    private const string ScratchPrefix = "build-";

    /// <summary>The apps' buildah storages.</summary>
    public string Buildah => Path.Combine(BuildWork, "buildah");

    /// <summary>One app's buildah storage: its own layer cache, so no team reuses another's cached steps.</summary>
    public string BuildahStorage(Guid app) => Path.Combine(Buildah, app.ToString("N"));
}
