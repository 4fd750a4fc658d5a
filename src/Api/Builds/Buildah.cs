using Platform.Api.Infrastructure;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>
/// buildah as builds use it: rootless, as the build account (<see cref="BuildUser"/>), so RUN steps run in a user
/// name-space whose root is that unprivileged account. Each app has storage of its own
/// (<see cref="DataLayout.BuildahStorage"/>, the account's: a per-app layer cache, so no team reuses another's cached
/// steps) configured for the platform registry; bases pulled first with the build's token, then <c>bud</c> with
/// runc in the build's cgroup (inherited: a rootless runc makes no cgroups) and network name-space (buildah runs in
/// it, so RUN steps share it), <c>push</c>, and the housekeeping of that storage (old images, working containers a
/// killed build left, the whole cache of a deleted app).
/// </summary>
public sealed class Buildah(DataLayout layout, BuildUser account)
{
    /// <summary>How long a housekeeping command may take (they only touch local storage).</summary>
    private static readonly TimeSpan Housekeeping = TimeSpan.FromMinutes(5);

    /// <summary>
    /// buildah's configuration for one app's storage, owned by the build account (a cache an older, rootful
    /// version left is removed first); returns the environment that points buildah at it.
    /// </summary>
    public async Task<Dictionary<string, string?>> ConfigureAsync(Guid app, string registry, CancellationToken ct)
    {
        var user = await account.EnsureAsync(ct);
        var root = layout.BuildahStorage(app);   // below the build work folder, which the build job prepared
        if (Directory.Exists(root) && await OwnerOfAsync(root, ct) != user.Uid)
        {
            await HousekeepAsync(["rm", "--all"], StorageEnv(root), asRoot: true);
            await HousekeepAsync(["rmi", "--all", "--force"], StorageEnv(root), asRoot: true);
            Directory.Delete(root, recursive: true);
        }
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(root, "storage.conf"),
            $"[storage]\ndriver = \"overlay\"\ngraphroot = \"{root}/storage\"\nrunroot = \"{root}/run\"\n");
        File.WriteAllText(Path.Combine(root, "registries.conf"),
            $"unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        File.WriteAllText(Path.Combine(root, "containers.conf"), "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n");
        Directory.CreateDirectory(Path.Combine(root, "xdg"));
        await BuildUser.HandOverAsync(user, root, ct);
        return StorageEnv(root);
    }

    private static async Task<int> OwnerOfAsync(string path, CancellationToken ct) =>
        int.TryParse((await ProcessRunner.CheckedAsync("stat", ["--format=%u", "--", path], ct)).Stdout.Trim(), out var uid) ? uid : -1;

    /// <summary>The environment that points buildah at an app's storage, as the app's builds configured it.</summary>
    private static Dictionary<string, string?> StorageEnv(string root) => new()
    {
        ["CONTAINERS_STORAGE_CONF"] = Path.Combine(root, "storage.conf"),
        ["CONTAINERS_REGISTRIES_CONF"] = Path.Combine(root, "registries.conf"),
        ["CONTAINERS_CONF"] = Path.Combine(root, "containers.conf"),
        ["HOME"] = root,
        ["XDG_RUNTIME_DIR"] = Path.Combine(root, "xdg"),
    };

    /// <summary>
    /// Pulls every image the rewritten Dockerfile names (<paramref name="pulls"/>, with the platform a FROM asks for)
    /// with the build's auth file, which names the platform's registry alone, from inside <paramref name="netns"/>
    /// when given (the build's network, with a <see cref="RegistryDoor"/> open); <c>bud</c> then pulls nothing.
    /// </summary>
    internal async Task PullAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, IReadOnlyDictionary<string, string?> env,
        IReadOnlyList<DockerfileBases.Pull> pulls, string? netns, CancellationToken ct)
    {
        var user = await account.EnsureAsync(ct);
        foreach (var pull in pulls)
        {
            List<string> args = ["pull", "--policy", "always", "--tls-verify=false", "--authfile", workspace.AuthFile];
            if (pull.Platform is { } platform) args.AddRange(["--platform", platform]);
            var (file, line) = BuildUser.Command(user, "buildah", [.. args, pull.Image], env, netns);
            output.Say($"pulling {pull.Image}{(pull.Platform is null ? "" : " for " + pull.Platform)}");
            await BuildStep.RunAsync(output, cgroup, file, line, null, ct);
        }
    }

    /// <summary>
    /// <c>buildah bud</c> of the checkout's real path with the rewritten Dockerfile, inside <paramref name="netns"/>
    /// (RUN steps share it; without one they get no network at all), under the build's cgroup, with the bases already pulled.
    /// </summary>
    internal async Task BudAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, IReadOnlyDictionary<string, string?> env,
        string? netns, string image, CancellationToken ct)
    {
        var user = await account.EnsureAsync(ct);
        var (file, line) = BuildUser.Command(user, "buildah", ["bud", "--layers", "--isolation", "oci", "--runtime", "/usr/sbin/runc",
            "--network", netns is null ? "none" : "host", "--runtime-flag", "root=" + workspace.RuntimeRoot,
            "--pull=never", "-f", workspace.RewrittenDockerfile, "-t", image, workspace.Context], env, netns);
        await BuildStep.RunAsync(output, cgroup, file, line, null, ct);
    }

    /// <summary>
    /// Pushes <paramref name="image"/> to the registry it names (the platform's) with the build's auth file, from inside
    /// <paramref name="netns"/> when given (as <see cref="PullAsync"/>); returns the manifest's digest.
    /// </summary>
    internal async Task<string> PushAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, IReadOnlyDictionary<string, string?> env,
        string image, string? netns, CancellationToken ct)
    {
        var user = await account.EnsureAsync(ct);
        var (file, line) = BuildUser.Command(user, "buildah", ["push", "--tls-verify=false", "--authfile", workspace.AuthFile,
            "--digestfile", workspace.DigestFile, image, "docker://" + image], env, netns);
        await BuildStep.RunAsync(output, cgroup, file, line, null, ct);
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
    private async Task<string> HousekeepAsync(IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> env, bool asRoot = false)
    {
        try
        {
            var (file, line) = asRoot ? ("buildah", args) : BuildUser.Command(await account.EnsureAsync(CancellationToken.None), "buildah", args, env);
            var r = await ProcessRunner.RunAsync(file, line, CancellationToken.None, Housekeeping, asRoot ? env : null);
            return r.Succeeded ? r.Stdout : "";
        }
        catch (Exception e) when (e is TimeoutException or BuildFailure)
        {
            return "";
        }
    }
}
