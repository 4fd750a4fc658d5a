using Platform.Api.Infrastructure;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>
/// buildah as builds use it: each app has storage of its own (<see cref="DataLayout.BuildahStorage"/>: a
/// per-app layer cache, so no team reuses another's cached steps) configured for the platform registry;
/// <c>bud</c> with runc in the build's cgroup and network, <c>push</c> with the build's token, and the
/// housekeeping of that storage (old images, working containers a killed build left, the whole cache of
/// a deleted app).
/// </summary>
public sealed class Buildah(DataLayout layout)
{
    /// <summary>How long a housekeeping command may take (they only touch local storage).</summary>
    private static readonly TimeSpan Housekeeping = TimeSpan.FromMinutes(5);

    /// <summary>buildah's configuration for one app's storage; returns the environment that points buildah at it.</summary>
    public Dictionary<string, string?> Configure(Guid app, string registry)
    {
        var root = layout.BuildahStorage(app);
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, "storage.conf"),
            $"[storage]\ndriver = \"overlay\"\ngraphroot = \"{root}/storage\"\nrunroot = \"{root}/run\"\n");
        File.WriteAllText(Path.Combine(root, "registries.conf"),
            $"unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        File.WriteAllText(Path.Combine(root, "containers.conf"), "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n");
        return StorageEnv(root);
    }

    /// <summary>The environment that points buildah at an app's storage, as the app's builds configured it.</summary>
    private static Dictionary<string, string?> StorageEnv(string root) => new()
    {
        ["CONTAINERS_STORAGE_CONF"] = Path.Combine(root, "storage.conf"),
        ["CONTAINERS_REGISTRIES_CONF"] = Path.Combine(root, "registries.conf"),
        ["CONTAINERS_CONF"] = Path.Combine(root, "containers.conf"),
    };

    /// <summary>
    /// <c>buildah bud</c> of the checkout's real path with the rewritten Dockerfile: RUN steps in <paramref name="network"/>,
    /// under the build's cgroup; pulls authenticate from the build's auth file, which names the platform's registry alone.
    /// </summary>
    internal static Task BudAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, IReadOnlyDictionary<string, string?> env,
        IReadOnlyList<string> network, string image, CancellationToken ct) =>
        BuildStep.RunAsync(output, cgroup, "buildah", ["bud", "--layers", "--isolation", "oci", "--runtime", "/usr/sbin/runc", .. network,
            "--runtime-flag", "root=" + workspace.RuntimeRoot,
            "--cgroup-parent", cgroup.Parent,   // the build's limits hold for the steps through the hierarchy, and its OOM counter sees them
            "--tls-verify=false", "--authfile", workspace.AuthFile, "--pull", "-f", workspace.RewrittenDockerfile, "-t", image, workspace.Context], env, ct);

    /// <summary>Pushes <paramref name="image"/> to the registry it names (the platform's) with the build's auth file; returns the manifest's digest.</summary>
    internal static async Task<string> PushAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, IReadOnlyDictionary<string, string?> env,
        string image, CancellationToken ct)
    {
        await BuildStep.RunAsync(output, cgroup, "buildah", ["push", "--tls-verify=false", "--authfile", workspace.AuthFile, "--digestfile", workspace.DigestFile,
            image, "docker://" + image], env, ct);
        return (await File.ReadAllTextAsync(workspace.DigestFile, ct)).Trim();
    }

    /// <summary>
    /// Removes the app's images of <paramref name="repository"/> other than those of <paramref name="keepCommits"/>
    /// (and their cached steps), so the cache does not grow with every build. Best effort.
    /// </summary>
    public async Task PruneAsync(Guid app, string registry, string repository, IReadOnlyCollection<string> keepCommits)
    {
        var env = StorageEnv(layout.BuildahStorage(app));
        var listed = await HousekeepAsync(["images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"], env);
        var prefix = $"{registry}/{repository}:";
        foreach (var image in listed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (image.StartsWith(prefix, StringComparison.Ordinal) && !keepCommits.Contains(image[prefix.Length..]))
                await HousekeepAsync(["rmi", image], env);
    }

    /// <summary>Removes buildah's working containers from an app's storage (those a killed build left); its images stay as the cache.</summary>
    public async Task RemoveWorkingContainersAsync(Guid app)
    {
        var storage = layout.BuildahStorage(app);
        if (Directory.Exists(storage)) await HousekeepAsync(["rm", "--all"], StorageEnv(storage));
    }

    /// <summary>Removes an app's whole layer cache (the app was deleted).</summary>
    public async Task RemoveStorageAsync(Guid app)
    {
        var storage = layout.BuildahStorage(app);
        if (!Directory.Exists(storage)) return;
        await RemoveWorkingContainersAsync(app);
        await HousekeepAsync(["rmi", "--all", "--force"], StorageEnv(storage));
        try { Directory.Delete(storage, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>A buildah housekeeping command, best effort: its stdout, or nothing when it failed or ran past its time (and was killed).</summary>
    private static async Task<string> HousekeepAsync(IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> env)
    {
        try
        {
            var r = await ProcessRunner.RunAsync("buildah", args, CancellationToken.None, Housekeeping, env);
            return r.Succeeded ? r.Stdout : "";
        }
        catch (TimeoutException)
        {
            return "";
        }
    }
}
