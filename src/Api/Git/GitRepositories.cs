using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Api.Infrastructure;
using Platform.Host.Processes;

namespace Platform.Api.Git;

/// <summary>
/// The bare repositories of apps built from the platform's git (<see cref="DataLayout.Repository"/>): made on
/// first use with <c>main</c> as default branch and pushes allowed, read for the commit a revision names,
/// deleted with the app. A singleton: its creation lock is this host's.
/// </summary>
public sealed class GitRepositories(DataLayout layout)
{
    private readonly SemaphoreSlim initLock = new(1, 1);
    private bool hooksWritten;

    /// <summary>
    /// The pre-receive hook every push runs (core.hooksPath, set per push): objects of a push sit in git's quarantine
    /// below <c>objects/</c> until every hook accepts, so measuring <c>objects/</c> measures the repository as it would
    /// be. Above the limit the push is refused with the figures (git shows them as <c>remote:</c> lines) and git drops
    /// the quarantine: the refs and objects stay as they were.
    /// </summary>
    private const string PreReceive = """
        #!/bin/sh
        # Written by the platform (Platform:Git:MaxRepositoryMiB); rewritten at each start.
        limit="$PLATFORM_GIT_MAX_BYTES"
        [ -n "$limit" ] || exit 0
        size=$(du -sb "${GIT_DIR:-.}/objects" | cut -f1)
        if [ "$size" -gt "$limit" ]; then
            echo "push refused: the repository would be $((size / 1048576)) MiB ($size bytes), above its limit of $((limit / 1048576)) MiB (Platform:Git:MaxRepositoryMiB)" >&2
            exit 1
        fi
        exit 0

        """;

    /// <summary>The folder of the platform's hooks, written once per host (atomically: a push never runs half a hook).</summary>
    public string Hooks
    {
        get
        {
            if (hooksWritten) return layout.GitHooks;
            Directory.CreateDirectory(layout.GitHooks);
            var temp = Path.Combine(layout.GitHooks, ".pre-receive-" + Guid.NewGuid().ToString("N")[..8]);
            File.WriteAllText(temp, PreReceive);
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.Move(temp, Path.Combine(layout.GitHooks, "pre-receive"), overwrite: true);
            hooksWritten = true;
            return layout.GitHooks;
        }
    }

    /// <summary>git http-backend's project root.</summary>
    public string Root => layout.Git;

    public string PathOf(Guid app) => layout.Repository(app);

    /// <summary>The commit a revision (branch, commit id) names in the app's repository, or null when it names none (or there is no repository).</summary>
    public async Task<string?> ResolveAsync(Guid app, string revision, CancellationToken ct)
    {
        var bare = PathOf(app);
        if (!Directory.Exists(bare)) return null;
        var r = await ProcessRunner.RunAsync("git", ["--git-dir", bare, "rev-parse", "--verify", "--quiet", revision + "^{commit}"], ct);
        return r.Succeeded ? r.Stdout.Trim() : null;
    }

    /// <summary>Makes the app's repository unless it exists: in a temporary folder renamed into place, so it is never seen half made.</summary>
    public async Task EnsureAsync(Guid app, CancellationToken ct)
    {
        var bare = PathOf(app);
        if (Directory.Exists(bare)) return;
        await initLock.WaitAsync(ct);
        try
        {
            if (Directory.Exists(bare)) return;
            var temp = bare + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
            await ProcessRunner.CheckedAsync("git", ["init", "--bare", "--initial-branch=main", temp], ct);
            await ProcessRunner.CheckedAsync("git", ["--git-dir", temp, "config", "http.receivepack", "true"], ct);
            await ProcessRunner.CheckedAsync("git", ["--git-dir", temp, "config", "receive.denyNonFastForwards", "false"], ct);
            Directory.Move(temp, bare);
        }
        finally
        {
            initLock.Release();
        }
    }

    /// <summary>Deletes the app's repository (the app was deleted).</summary>
    public void Delete(Guid app)
    {
        var bare = PathOf(app);
        if (Directory.Exists(bare)) Directory.Delete(bare, recursive: true);
    }
}

public static class GitSetup
{
    /// <summary>Git hosting: the apps' bare repositories (served by <see cref="GitHosting.MapGitHosting"/>).</summary>
    public static IHostApplicationBuilder AddPlatformGit(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<GitRepositories>();
        return builder;
    }
}
