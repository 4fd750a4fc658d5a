namespace Platform.Api.Builds;

/// <summary>
/// The scratch folder of one build attempt (<see cref="Infrastructure.DataLayout.BuildScratch"/>): the
/// checkout, and beside it runc's state and buildah's temporary bundles, so a killed build leaves no
/// container records in the machine's runc root nor bundles in /var/tmp. The exact commit is cloned from
/// the platform's git or from the app's source URL, pinned to the addresses that were checked.
/// </summary>
internal sealed class BuildWorkspace
{
    private BuildWorkspace(string root) => Root = root;

    public string Root { get; }
    public string Checkout => Path.Combine(Root, "src");
    public string RuntimeRoot => Path.Combine(Root, "runc");
    public string Temp => Path.Combine(Root, "tmp");
    public string DigestFile => Path.Combine(Root, ".digest");
    public string AuthFile => Path.Combine(Root, "auth.json");

    /// <summary>
    /// The build's registry auth file (0600): one entry, for <paramref name="registry"/>. buildah sends credentials only
    /// to registries its auth file names, so a FROM naming any other registry never receives the platform's.
    /// </summary>
    public void WriteAuthFile(string registry, string user, string password)
    {
        var auth = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{user}:{password}"));
        var json = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object> { ["auths"] = new Dictionary<string, object> { [registry] = new { auth } } });
        File.WriteAllBytes(AuthFile, []);   // empty while its mode closes it, then the secret
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(AuthFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(AuthFile, json);
    }

    /// <summary>The environment that keeps buildah from reading any other auth file (root's docker or containers config).</summary>
    public IReadOnlyDictionary<string, string?> AuthEnv => new Dictionary<string, string?>
    {
        ["REGISTRY_AUTH_FILE"] = AuthFile, ["DOCKER_CONFIG"] = Temp,
    };

    /// <summary>An empty workspace at <paramref name="root"/> (whatever was there before is removed).</summary>
    public static BuildWorkspace Create(string root)
    {
        var w = new BuildWorkspace(root);
        w.Remove();
        Directory.CreateDirectory(w.Root);
        if (OperatingSystem.IsLinux()) File.SetUnixFileMode(w.Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(w.Temp);
        return w;
    }

    public void Remove()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }

    private static readonly IReadOnlyDictionary<string, string?> GitEnv = new Dictionary<string, string?>
    {
        ["GIT_TERMINAL_PROMPT"] = "0", ["GIT_CONFIG_NOSYSTEM"] = "1", ["HOME"] = "/nonexistent",
        ["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
    };

    /// <summary>Clones <paramref name="source"/> (a URL checked by <see cref="SourceUrls"/>) or else the platform's bare repository, and checks the commit out.</summary>
    public async Task CheckOutAsync(BuildLog output, BuildCgroup cgroup, string? source, string platformRepository, string commit,
        IReadOnlyCollection<string> allowedHosts, CancellationToken ct)
    {
        if (source is not null)
        {
            var addresses = await SourceUrls.CheckAddressesAsync(source, allowedHosts, ct);
            var uri = new Uri(source);
            output.Say($"cloning {SourceUrls.Redact(source)} ({string.Join(", ", addresses.Select(a => a.ToString()))})");
            var port = uri.IsDefaultPort ? (uri.Scheme == "https" ? 443 : uri.Scheme == "ssh" ? 22 : 80) : uri.Port;
            string[] safe = ["-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
                "-c", "protocol.ssh.allow=always", "-c", "http.followRedirects=false", "-c", "core.hooksPath=/dev/null",
                "-c", $"http.curloptResolve={uri.IdnHost}:{port}:{string.Join(',', addresses.Select(a => a.ToString()))}"];
            await BuildStep.RunAsync(output, cgroup, "git", [.. safe, "clone", "--quiet", "--no-checkout", "--", source, Checkout], GitEnv, ct);
        }
        else
        {
            await BuildStep.RunAsync(output, cgroup, "git", ["clone", "--quiet", "--no-checkout", platformRepository, Checkout], GitEnv, ct);
        }
        await BuildStep.RunAsync(output, cgroup, "git", ["-C", Checkout, "-c", "core.hooksPath=/dev/null", "checkout", "--quiet", commit, "--"], GitEnv, ct);
    }

    /// <summary>The largest Dockerfile a build reads (it is read whole, into the Api's memory).</summary>
    public const int MaxDockerfileBytes = 1024 * 1024;

    /// <summary>The rewritten Dockerfile buildah reads: in the scratch folder, beside the checkout, never in it.</summary>
    public string RewrittenDockerfile => Path.Combine(Root, "Dockerfile");

    /// <summary>The checkout as buildah gets it (the build context): its real path, so no link above it moves the context.</summary>
    public string Context => RealPath(Checkout);

    /// <summary>
    /// The Dockerfile at <paramref name="path"/> in the checkout, resolved through every link on the way to a real
    /// file inside the checkout (a link that leads out is refused and named), with its base images checked and
    /// spelled out (<see cref="DockerfileBases"/>) and written to <see cref="RewrittenDockerfile"/>: the checkout is
    /// never written, so a link cannot turn the rewrite onto a file of the Api's (its database, its keys).
    /// Returns the original text and the rewritten one (with the upstream bases to cache and the images to pull).
    /// </summary>
    public async Task<(string Original, DockerfileBases.Result Rewritten)> DockerfileAsync(string path, string commit, string registry, IReadOnlyCollection<string> upstreams, CancellationToken ct)
    {
        var checkout = Context;
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 1; i <= parts.Length; i++)
        {
            var prefix = string.Join('/', parts.Take(i));
            if (!IsInside(checkout, RealPath(System.IO.Path.Combine(checkout, prefix))))
                throw new BuildFailure($"The Dockerfile path '{path}' goes through '{prefix}', a symbolic link that leads outside the repository: builds read only files inside it.");
        }
        var dockerfile = RealPath(System.IO.Path.Combine(checkout, path));
        var info = new FileInfo(dockerfile);
        if (!info.Exists) throw new BuildFailure($"There is no Dockerfile at '{path}' in commit {commit[..12]}.");
        if (info.Length > MaxDockerfileBytes) throw new BuildFailure($"The Dockerfile at '{path}' is larger than {MaxDockerfileBytes / 1024} KiB.");
        var original = await File.ReadAllTextAsync(dockerfile, ct);
        var rewritten = DockerfileBases.Rewrite(original, registry, upstreams);
        if (rewritten.Problems.Count > 0) throw new BuildFailure(string.Join("\n", rewritten.Problems));
        await File.WriteAllTextAsync(RewrittenDockerfile, rewritten.Text, ct);
        return (original, rewritten);
    }

    private static bool IsInside(string root, string path) => path == root || path.StartsWith(root + "/", StringComparison.Ordinal);

    /// <summary>
    /// <paramref name="path"/> (absolute) with every symbolic link on it followed, as realpath(3) does; components
    /// that do not exist are kept as they are. More than 40 links (a loop) is an error.
    /// </summary>
    public static string RealPath(string path)
    {
        var pending = new List<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var current = "/";
        var links = 0;
        while (pending.Count > 0)
        {
            var part = pending[0];
            pending.RemoveAt(0);
            if (part == ".") continue;
            if (part == "..")
            {
                current = System.IO.Path.GetDirectoryName(current) ?? "/";
                continue;
            }
            var next = System.IO.Path.Combine(current, part);
            if (new FileInfo(next).LinkTarget is { } target)
            {
                if (++links > 40) throw new BuildFailure($"Too many symbolic links on the way to '{path}'.");
                pending.InsertRange(0, target.Split('/', StringSplitOptions.RemoveEmptyEntries));
                if (target.StartsWith('/')) current = "/";
                continue;
            }
            current = next;
        }
        return current;
    }
}
