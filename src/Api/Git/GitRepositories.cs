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
