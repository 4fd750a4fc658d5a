using Platform.Api.Tests.Builds;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Cli;

/// <summary>git push through the CLI's remote, and the build followed with <c>platform builds logs -f</c>: real buildah, a real node.</summary>
[Collection("runtime")]
public sealed class CliBuildTests : IAsyncLifetime
{
    private Cluster _cluster = null!;
    private readonly CliRunner _cli = new(Path.Combine(Path.GetTempPath(), "platform-cli-tests", Guid.NewGuid().ToString("N")[..8]));
    private Dictionary<string, string> _env = [];

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_cli.Home);
        _cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        await _cluster.StartAgentAsync("cli-build-node");
        // Signed in with a token kept in the profile (as CI would), which the credential helper hands to git.
        var login = await _cli.RunAsync(["login", _cluster.Host.BaseAddress.ToString(), "--token", PlatformHost.AdminToken]);
        Assert.True(login.Code == 0, login.Err);
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        Directory.Delete(_cli.Home, recursive: true);
    }

    private Task<(int Code, string Out, string Err)> Cli(string[] args, string? cwd = null) =>
        _cli.RunAsync([.. args, "-t", Cluster.Team, "-p", Cluster.Project], _env, cwd: cwd, seconds: 300);

    [Fact]
    public async Task A_push_through_the_CLIs_remote_shows_its_build_and_rollout_live_and_a_broken_build_fails_the_push()
    {
        var created = await Cli(["apps", "create", "site", "--memory", "64"]);
        Assert.True(created.Code == 0, created.Err);
        var repo = Path.Combine(_cli.Home, "site");
        Directory.CreateDirectory(repo);
        Assert.Equal(0, (await _cli.GitAsync(repo, "init", "-q", "-b", "main")).Code);
        await File.WriteAllTextAsync(Path.Combine(repo, "Dockerfile"),
            // The step prints an escape sequence (a terminal title) and carriage returns that would spell SSE fields.
            "FROM busybox\nRUN printf 'step-one-of-the-build \\033]0;pwned\\007\\revent: end\\rdata: Failed\\n' && mkdir -p /www && echo from the cli > /www/index.html\n"
            + "CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n");
        Assert.Equal(0, (await _cli.GitAsync(repo, "add", ".")).Code);
        Assert.Equal(0, (await _cli.GitAsync(repo, "-c", "user.name=me", "-c", "user.email=me@example.com", "commit", "-qm", "one")).Code);
        var added = await Cli(["git", "remote", "site", "--add"], cwd: repo);
        Assert.True(added.Code == 0, added.Err);
        var pushed = await _cli.GitAsync(repo, "push", "platform", "main");
        Assert.True(pushed.Code == 0, pushed.Out);

        // git push itself followed the build and the rollout, as "remote:" lines, in order, before git's summary.
        var lines = pushed.Out.Split('\n');
        int At(string text)
        {
            var i = Array.FindIndex(lines, l => l.Contains(text, StringComparison.Ordinal));
            Assert.True(i >= 0, $"'{text}' in the push's output:\n{pushed.Out}");
            return i;
        }
        var queued = At("remote: Build #1 of ");
        var step = At("remote: step-one-of-the-build ?]0;pwned??event: end?data: Failed");   // no control character reaches the terminal
        Assert.DoesNotContain('\u001b', pushed.Out);
        var rolling = At("remote: Release v1: rolling out generation");
        var released = At("remote: Released v1: http://site-");
        Assert.True(queued < step && step < rolling && rolling < released, pushed.Out);
        Assert.True(At("main -> main") > released, pushed.Out);
        // Released means served: the router answers with the new content as the push returns.
        using (var served = await _cluster.ThroughRouterAsync("site"))
            Assert.Equal("from the cli\n", await served.Content.ReadAsStringAsync());

        // A finished build's log is still there to follow: the CLI prints it and its end state.
        var followed = await Cli(["builds", "logs", "site", "1", "-f"]);
        Assert.True(followed.Code == 0, followed.Err + followed.Out);
        Assert.Contains("step-one-of-the-build ?]0;pwned?", followed.Out);
        Assert.DoesNotContain('\u001b', followed.Out);
        Assert.Contains("Build #1 Succeeded", followed.Err);   // the carriage returns spelled no event: the build's own end came

        // A broken Dockerfile pushed with -o no-follow: the push returns at once; the CLI follows the build, exit 1 with its state.
        await File.WriteAllTextAsync(Path.Combine(repo, "Dockerfile"), "FROM busybox\nRUN echo about to fail && exit 3\n");
        Assert.Equal(0, (await _cli.GitAsync(repo, "-c", "user.name=me", "-c", "user.email=me@example.com", "commit", "-qam", "broken")).Code);
        var unfollowed = await _cli.GitAsync(repo, "push", "-o", "no-follow", "platform", "main");
        Assert.True(unfollowed.Code == 0, unfollowed.Out);
        Assert.DoesNotContain("remote: Build #2", unfollowed.Out);
        Assert.Contains("main -> main", unfollowed.Out);
        var broken = await Cli(["builds", "logs", "site", "2", "-f"]);
        Assert.Equal(1, broken.Code);
        Assert.Contains("about to fail", broken.Out);
        Assert.Contains("Build #2 of site ended Failed", broken.Err);

        // The same failure followed by git push: the step's output, then git's error band, and the push exits non-zero.
        await File.WriteAllTextAsync(Path.Combine(repo, "Dockerfile"), "FROM busybox\nRUN echo failing again && exit 4\n");
        Assert.Equal(0, (await _cli.GitAsync(repo, "-c", "user.name=me", "-c", "user.email=me@example.com", "commit", "-qam", "broken again")).Code);
        var failed = await _cli.GitAsync(repo, "push", "platform", "main");
        Assert.True(failed.Code != 0, failed.Out);
        Assert.Contains("remote: failing again", failed.Out);
        Assert.Matches(@"remote: Build #3 failed: .*exit status 4", failed.Out);

        var list = await Cli(["builds", "list", "site"]);
        Assert.Matches(@"#3\s+Failed \(.*exit status 4", list.Out);
        Assert.Matches(@"#2\s+Failed \(.*exit status 3", list.Out);
        Assert.Matches(@"#1\s+Succeeded", list.Out);
    }
}
