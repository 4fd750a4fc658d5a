using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A developer tries to fill the Api's disk through an app's git repository (Platform:Git:MaxRepositoryMiB = 2):
/// one push larger than the limit, then pushes that pass it only together. Each refused push leaves the branch
/// where it was and no quarantined objects behind; the pushes within the limit beside them succeed.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class GitSizeAttackTests
{
    [Fact]
    public async Task A_push_that_would_take_the_repository_past_its_limit_is_refused_with_the_limit_and_changes_nothing()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?> { ["Platform:Git:MaxRepositoryMiB"] = "2" });
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "gs" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/gs/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var app = await admin.PostAsJsonAsync("/api/v1/teams/gs/projects/p/apps", new { name = "site", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
        var developer = await host.UserTokenAsync("gs-dev@example.com");
        await admin.PutAsJsonAsync("/api/v1/teams/gs/members/gs-dev@example.com", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        var url = app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://dev:{developer}@");
        var home = Path.Combine(host.DataDir, "home");
        var work = Path.Combine(host.DataDir, "work");
        Directory.CreateDirectory(home);
        Task<Platform.Host.Processes.ProcessResult> Git(params string[] args) => Run.GitAsync(home, work, args);

        async Task<string> CommitAsync(string file, int bytes)
        {
            await File.WriteAllBytesAsync(Path.Combine(work, file), RandomNumberGenerator.GetBytes(bytes));   // random: git cannot compress it
            (await Git("add", file)).EnsureSuccess("git add");
            (await Git("commit", "-qm", file)).EnsureSuccess("git commit");
            return (await Git("rev-parse", "HEAD")).Stdout.Trim();
        }
        async Task<string?> RemoteTopicAsync() =>
            (await Git("ls-remote", url, "refs/heads/topic")).EnsureSuccess("ls-remote").Stdout.Split('\t')[0] is { Length: > 0 } id ? id : null;
        var objects = Path.Combine(host.DataDir, "git");
        string[] Quarantines() => Directory.GetDirectories(objects, "tmp_objdir-incoming-*", SearchOption.AllDirectories);

        (await Run.GitAsync(home, null, ["init", "-q", "--initial-branch=topic", work])).EnsureSuccess("git init");
        var first = await CommitAsync("small.txt", 1000);
        (await Git("push", url, "topic")).EnsureSuccess("a push within the limit");   // positive control
        Assert.Equal(first, await RemoteTopicAsync());

        // One pack larger than the whole limit: git's receive-pack stops it while it streams (git 2.39 does not print the figure).
        await CommitAsync("huge.bin", 3 << 20);
        var huge = await Git("push", url, "topic");
        Assert.NotEqual(0, huge.ExitCode);
        Assert.True(huge.Stderr.Contains("pack exceeds maximum allowed size"), huge.Stderr);
        Assert.Equal(first, await RemoteTopicAsync());
        Assert.Empty(Quarantines());

        // Pushes that fit one at a time but not together: the second is refused by the platform's hook, with the figures.
        (await Git("reset", "-q", "--hard", first)).EnsureSuccess("git reset");
        var fits = await CommitAsync("part1.bin", 1200 << 10);
        (await Git("push", "--force", url, "topic")).EnsureSuccess("a second push within the limit");   // positive control
        Assert.Equal(fits, await RemoteTopicAsync());
        await CommitAsync("part2.bin", 1200 << 10);
        var over = await Git("push", url, "topic");
        Assert.NotEqual(0, over.ExitCode);
        Assert.True(over.Stderr.Contains("above its limit of 2 MiB (Platform:Git:MaxRepositoryMiB)") && over.Stderr.Contains("pre-receive hook declined"), over.Stderr);
        Assert.Equal(fits, await RemoteTopicAsync());
        Assert.Empty(Quarantines());
    }
}
