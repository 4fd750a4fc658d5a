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

    /// <summary>An empty workspace at <paramref name="root"/> (whatever was there before is removed).</summary>
    public static BuildWorkspace Create(string root)
    {
        var w = new BuildWorkspace(root);
        w.Remove();
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

    /// <summary>
    /// The Dockerfile at <paramref name="path"/> in the checkout (no link, not outside it) with short base names
    /// resolved to <paramref name="registry"/>'s <c>library/</c>; returns its path and its original text.
    /// </summary>
    public async Task<(string Path, string Original)> DockerfileAsync(string path, string commit, string registry, CancellationToken ct)
    {
        var dockerfile = System.IO.Path.GetFullPath(System.IO.Path.Combine(Checkout, path));
        if (!dockerfile.StartsWith(Checkout + "/", StringComparison.Ordinal) || !File.Exists(dockerfile) || new FileInfo(dockerfile).LinkTarget is not null)
            throw new BuildFailure($"There is no Dockerfile at '{path}' in commit {commit[..12]}.");
        var original = await File.ReadAllTextAsync(dockerfile, ct);
        await File.WriteAllTextAsync(dockerfile, BuildJob.ResolveShortNames(original, registry), ct);
        return (dockerfile, original);
    }
}
