using System.Net;
using System.Net.Http.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Git;

/// <summary>Real git against the Api's smart-HTTP hosting: developers push, viewers clone but cannot push, others see nothing.</summary>
public sealed class GitHostingTests
{
    private static Task<Platform.Host.Processes.ProcessResult> GitAsync(string home, string? cwd, params string[] args) =>
        Run.GitAsync(home, cwd, args);

    [Fact]
    public async Task Developers_push_viewers_clone_but_cannot_push_and_others_see_nothing()
    {
        await using var host = new PlatformHost(Provider.Sqlite);
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "gt" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/gt/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var app = await admin.PostAsJsonAsync("/api/v1/teams/gt/projects/p/apps", new { name = "site", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/gt/projects/p/apps", new { name = "boxed", image = "library/busybox:latest", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
        var developer = await host.UserTokenAsync("git-dev@example.com");
        var viewer = await host.UserTokenAsync("git-viewer@example.com");
        var outsider = await host.UserTokenAsync("git-outsider@example.com");
        await admin.PutAsJsonAsync("/api/v1/teams/gt/members/git-dev@example.com", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PutAsJsonAsync("/api/v1/teams/gt/members/git-viewer@example.com", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.OK);

        var gitUrl = app.GetProperty("gitUrl").GetString()!;
        Assert.EndsWith("/git/gt/p/site.git", gitUrl);
        string As(string pat) => gitUrl.Replace("http://", $"http://someone:{pat}@");
        var home = Path.Combine(host.DataDir, "home");
        var work = Path.Combine(host.DataDir, "work");
        Directory.CreateDirectory(home);

        // The developer pushes a first commit to main (protocol v2 for the ref advertisement).
        (await GitAsync(home, null, "init", "--initial-branch=main", work)).EnsureSuccess("git init");
        await File.WriteAllTextAsync(Path.Combine(work, "index.html"), "hello from git\n");
        (await GitAsync(home, work, "add", ".")).EnsureSuccess("git add");
        (await GitAsync(home, work, "commit", "-m", "first")).EnsureSuccess("git commit");
        (await GitAsync(home, work, "-c", "protocol.version=2", "push", "-o", "no-follow", As(developer), "main")).EnsureSuccess("developer push");
        var refs = (await GitAsync(home, null, "-c", "protocol.version=2", "ls-remote", As(developer))).EnsureSuccess("ls-remote v2");
        var head = (await GitAsync(home, work, "rev-parse", "HEAD")).Stdout.Trim();
        Assert.Contains($"{head}\trefs/heads/main", refs.Stdout);

        // A larger push goes chunked (a post buffer smaller than the pack) and arrives whole.
        await File.WriteAllBytesAsync(Path.Combine(work, "blob.bin"), System.Security.Cryptography.RandomNumberGenerator.GetBytes(3 << 20));
        (await GitAsync(home, work, "add", ".")).EnsureSuccess("git add");
        (await GitAsync(home, work, "commit", "-m", "second")).EnsureSuccess("git commit");
        (await GitAsync(home, work, "-c", "http.postBuffer=65536", "push", "-o", "no-follow", As(developer), "main")).EnsureSuccess("chunked push");
        head = (await GitAsync(home, work, "rev-parse", "HEAD")).Stdout.Trim();

        // The viewer clones what was pushed, and may not push.
        var clone = Path.Combine(host.DataDir, "clone");
        (await GitAsync(home, null, "clone", As(viewer), clone)).EnsureSuccess("viewer clone");
        Assert.Equal("hello from git\n", await File.ReadAllTextAsync(Path.Combine(clone, "index.html")));
        Assert.Equal(3 << 20, new FileInfo(Path.Combine(clone, "blob.bin")).Length);
        Assert.Equal(head, (await GitAsync(home, clone, "rev-parse", "HEAD")).Stdout.Trim());
        await File.WriteAllTextAsync(Path.Combine(clone, "index.html"), "defaced\n");
        (await GitAsync(home, clone, "commit", "-am", "not allowed")).EnsureSuccess("viewer commit");
        var refused = await GitAsync(home, clone, "push", As(viewer), "main");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("403", refused.Stderr);

        // Someone outside the team, or nobody, sees no repository at all.
        var hidden = await GitAsync(home, null, "ls-remote", As(outsider));
        Assert.NotEqual(0, hidden.ExitCode);
        Assert.Contains("not found", hidden.Stderr);
        var anonymous = await GitAsync(home, null, "ls-remote", gitUrl);
        Assert.NotEqual(0, anonymous.ExitCode);
        Assert.Contains("could not read Username", anonymous.Stderr);
        var wrong = await GitAsync(home, null, "ls-remote", As("plat_not_a_token_0000000000000000000000000000"));
        Assert.Contains("Authentication failed", wrong.Stderr);

        // An app deployed from an image has no repository.
        var boxed = await GitAsync(home, null, "ls-remote", As(developer).Replace("/site.git", "/boxed.git"));
        Assert.Contains("not found", boxed.Stderr);

        // Deleting the app deletes its repository.
        Assert.Single(Directory.GetDirectories(Path.Combine(host.DataDir, "git"), "*.git"));
        await admin.DeleteAsync("/api/v1/teams/gt/projects/p/apps/site").ShouldBeAsync(HttpStatusCode.NoContent);
        Assert.Empty(Directory.GetDirectories(Path.Combine(host.DataDir, "git"), "*.git"));
    }
}
