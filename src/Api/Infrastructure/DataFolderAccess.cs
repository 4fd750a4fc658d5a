namespace Platform.Api.Infrastructure;

/// <summary>
/// Keeps the data folder closed to every other account of the machine — the build account above all, which a
/// RUN step that escaped runc would be (<see cref="Builds.BuildUser"/>): the folder itself may be passed but not
/// listed (0711, so a node's data below it stays reachable for its containers), and what the Api keeps there —
/// databases, keys, registry, git, build logs, the admin's credentials — is the owner's alone (0600 files, 0700
/// folders), also in a data folder made by an older version. The build account's own folders
/// (<see cref="DataLayout.BuildWork"/>) are root's, passable, with one folder per app or build handed to it.
/// </summary>
public static class DataFolderAccess
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Passable = Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>
    /// Makes the Api's folders closed and closes what exists now; run before the Api serves and again once the host
    /// started (Hangfire makes its database then).
    /// </summary>
    public static void Protect(DataLayout layout)
    {
        if (OperatingSystem.IsWindows() || !Directory.Exists(layout.Root)) return;
        Restrict(layout.Root, File.GetUnixFileMode(layout.Root) & Passable);   // never opens a folder that was closed
        foreach (var dir in new[] { layout.Keys, layout.Registry, layout.Git, layout.GitHooks, layout.BuildLogs })
        {
            Directory.CreateDirectory(dir);   // made here, closed, before anything is kept in it
            Restrict(dir, Private);
        }
        foreach (var file in Directory.EnumerateFiles(layout.Root))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith("platform.db", StringComparison.Ordinal) || name.StartsWith("jobs.db", StringComparison.Ordinal) || name == "admin-credentials")
                Restrict(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>The build account's root and its two folders: root's, passable, not listable.</summary>
    public static void PrepareBuildWork(DataLayout layout)
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (var dir in new[] { layout.BuildWork, layout.Scratch, layout.Buildah })
        {
            Directory.CreateDirectory(dir);
            Restrict(dir, Passable);
        }
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void Restrict(string path, UnixFileMode mode)
    {
        try
        {
            if ((File.GetUnixFileMode(path) & ~UnixFileMode.StickyBit & ~UnixFileMode.SetGroup & ~UnixFileMode.SetUser) != mode) File.SetUnixFileMode(path, mode);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not ours to change (another owner): left as it is.
        }
    }
}
