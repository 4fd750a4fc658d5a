using System.Net;
using System.Security.Cryptography;
using System.Text;
using Platform.Api.Builds;

namespace Platform.Api.Tests.Builds;

/// <summary>Which repositories a build may clone, how webhook signatures are checked, how buildah's errors read to people.</summary>
public sealed class BuildRulesTests
{
    [Theory]
    [InlineData("https://github.com/acme/web.git")]
    [InlineData("http://git.example.com:8080/acme/web.git")]
    [InlineData("ssh://git@github.com/acme/web.git")]
    [InlineData("https://token:x@gitlab.com/acme/web.git")]
    [InlineData("https://93.184.216.34/acme/web.git")]
    public void Public_http_and_ssh_repositories_are_accepted(string url) => Assert.Null(SourceUrls.SyntaxProblem(url));

    [Theory]
    [InlineData("file:///etc/passwd", "scheme")]
    [InlineData("git://github.com/acme/web.git", "scheme")]
    [InlineData("ftp://example.com/web.git", "scheme")]
    [InlineData("ext::sh -c id", "scheme")]
    [InlineData("/srv/git/web.git", "scheme")]
    [InlineData("https://127.0.0.1/web.git", "loopback")]
    [InlineData("https://[::1]/web.git", "loopback")]
    [InlineData("https://10.0.0.5/web.git", "private")]
    [InlineData("https://172.20.1.1/web.git", "private")]
    [InlineData("https://192.168.1.10/web.git", "private")]
    [InlineData("http://169.254.169.254/latest/meta-data", "link-local")]
    [InlineData("https://[fe80::1]/web.git", "link-local")]
    [InlineData("https://[fd00::1]/web.git", "private")]
    [InlineData("https://100.64.0.1/web.git", "shared")]
    [InlineData("https://0.0.0.0/web.git", "unspecified")]
    [InlineData("https://[::ffff:10.0.0.1]/web.git", "private")]
    public void Local_and_non_git_urls_are_refused_saying_why(string url, string why) =>
        Assert.Contains(why, SourceUrls.SyntaxProblem(url));

    [Fact]
    public void An_allowed_in_house_host_may_be_private()
    {
        Assert.Null(SourceUrls.SyntaxProblem("https://10.0.0.5/web.git", ["10.0.0.5"]));
        Assert.NotNull(SourceUrls.SyntaxProblem("https://10.0.0.6/web.git", ["10.0.0.5"]));
    }

    [Fact]
    public async Task Names_are_checked_on_what_they_resolve_to()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => SourceUrls.CheckAddressesAsync("http://localhost/web.git", [], CancellationToken.None));
        Assert.Contains("loopback", e.Message);
        Assert.Equal([IPAddress.Loopback], await SourceUrls.CheckAddressesAsync("http://127.0.0.1/web.git", ["127.0.0.1"], CancellationToken.None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => SourceUrls.CheckAddressesAsync("file:///etc", ["127.0.0.1"], CancellationToken.None));
    }

    [Fact]
    public void Credentials_never_show()
    {
        Assert.Equal("https://***@gitlab.com/acme/web.git", SourceUrls.Redact("https://oauth2:glpat-secret@gitlab.com/acme/web.git"));
        Assert.Equal("https://gitlab.com/acme/web.git", SourceUrls.Redact("https://gitlab.com/acme/web.git"));
    }

    [Fact]
    public void A_GitHub_signature_is_the_HMAC_of_the_exact_body()
    {
        var body = Encoding.UTF8.GetBytes("""{"ref":"refs/heads/main"}""");
        var good = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes("s3cret-s3cret-s3cret"), body));
        Assert.True(Webhooks.GitHubSignatureMatches(good, "s3cret-s3cret-s3cret", body));
        Assert.True(Webhooks.GitHubSignatureMatches(good.ToUpperInvariant().Replace("SHA256=", "sha256="), "s3cret-s3cret-s3cret", body));
        Assert.False(Webhooks.GitHubSignatureMatches(good, "another-secret-value", body));
        Assert.False(Webhooks.GitHubSignatureMatches(good, "s3cret-s3cret-s3cret", [.. body, (byte)' ']));
        Assert.False(Webhooks.GitHubSignatureMatches(good.Replace("sha256=", "sha1="), "s3cret-s3cret-s3cret", body));
        Assert.False(Webhooks.GitHubSignatureMatches("", "s3cret-s3cret-s3cret", body));
    }

    [Fact]
    public void A_failed_step_is_named_by_its_Dockerfile_line()
    {
        const string dockerfile = "FROM busybox\nWORKDIR /app\nRUN  make   all\nCMD [\"app\"]\n";
        var reason = BuildJob.Explain("""Error: building at STEP "RUN make all": while running runtime: exit status 2""", dockerfile, "reg:5000");
        Assert.Equal("Dockerfile line 3: RUN make all — exit status 2", reason);
    }

    [Fact]
    public void A_missing_base_image_is_said_in_words()
    {
        var reason = BuildJob.Explain(
            "Error: creating build container: initializing source docker://reg:5000/library/nosuch:latest: reading manifest latest in reg:5000/library/nosuch: manifest unknown",
            "FROM nosuch\n", "reg:5000");
        Assert.StartsWith("The base image library/nosuch was not found in the platform registry", reason);
    }

    [Fact]
    public void A_registry_out_of_reach_is_not_called_a_missing_base_image()
    {
        var reason = BuildJob.Explain(
            "Error: initializing source docker://reg:5000/library/busybox:latest: pinging container registry reg:5000: Get \"http://reg:5000/v2/\": dial tcp 10.0.0.1:5000: connect: connection refused",
            "FROM busybox\n", "reg:5000");
        Assert.StartsWith("The build could not reach the platform's registry: ", reason);
    }

    [Theory]
    [InlineData("FROM busybox\nRUN x\n", "FROM reg:5000/library/busybox\nRUN x\n")]
    [InlineData("FROM alpine:3 AS base\n", "FROM reg:5000/library/alpine:3 AS base\n")]
    [InlineData("FROM reg:5000/team/p/app:1\n", "FROM reg:5000/team/p/app:1\n")]
    [InlineData("FROM team/p/base\n", "FROM reg:5000/team/p/base\n")]
    [InlineData("FROM scratch\nCOPY x /\n", "FROM scratch\nCOPY x /\n")]
    [InlineData("FROM busybox AS build\nRUN x\nFROM build\n", "FROM reg:5000/library/busybox AS build\nRUN x\nFROM build\n")]
    [InlineData("FROM --platform=linux/amd64 busybox\n", "FROM --platform=linux/amd64 reg:5000/library/busybox\n")]
    [InlineData("FROM busybox AS b\nFROM scratch\nCOPY --from=b /bin/sh /sh\nCOPY --from=0 /x /y\nCOPY --from=alpine /z /z\n",
        "FROM reg:5000/library/busybox AS b\nFROM scratch\nCOPY --from=b /bin/sh /sh\nCOPY --from=0 /x /y\nCOPY --from=reg:5000/library/alpine /z /z\n")]
    [InlineData("ARG BASE=busybox:1\nFROM ${BASE}\n", "ARG BASE=busybox:1\nFROM reg:5000/library/busybox:1\n")]
    [InlineData("FROM \\\n  busybox\n", "FROM   reg:5000/library/busybox\n\n")]
    [InlineData("FROM up.example.com:5000/x/y:1\n", "FROM reg:5000/library/upstream/up.example.com-5000/x/y:1\n")]
    [InlineData("FROM busybox\nRUN --mount=type=bind,from=alpine,target=/a ls /a\n", "FROM reg:5000/library/busybox\nRUN --mount=type=bind,from=reg:5000/library/alpine,target=/a ls /a\n")]
    public void Base_images_resolve_to_the_platform_registry_and_scratch_stages_platform_and_listed_upstreams_stay(string dockerfile, string expected)
    {
        var result = DockerfileBases.Rewrite(dockerfile, "reg:5000", ["up.example.com:5000"]);
        Assert.Empty(result.Problems);
        Assert.Equal(expected, result.Text);
    }

    [Fact]
    public void Every_image_a_Dockerfile_names_is_listed_once_to_pull_before_bud_with_the_platform_its_FROM_asks_for()
    {
        var result = DockerfileBases.Rewrite("""
            FROM --platform=linux/amd64 busybox AS tools
            FROM tools
            COPY --from=alpine:3 /x /x
            COPY --from=tools /y /y
            RUN --mount=type=bind,from=team/p/base,target=/b ls /b
            FROM --platform=$BUILDPLATFORM busybox
            FROM scratch
            COPY --from=0 /z /z
            FROM up.example.com:5000/x/y:1
            FROM busybox
            """, "reg:5000", ["up.example.com:5000"]);
        Assert.Empty(result.Problems);
        Assert.Equal([
            new DockerfileBases.Pull("reg:5000/library/busybox", "linux/amd64"),
            new DockerfileBases.Pull("reg:5000/library/alpine:3", null),
            new DockerfileBases.Pull("reg:5000/team/p/base", null),
            new DockerfileBases.Pull("reg:5000/library/busybox", null),
            new DockerfileBases.Pull("reg:5000/library/upstream/up.example.com-5000/x/y:1", null),
        ], result.Pulls);
    }

    [Theory]
    [InlineData("FROM evil.example.com/x\n", "Dockerfile line 1: 'evil.example.com/x' is in the registry evil.example.com")]
    [InlineData("FROM busybox\nCOPY --from=127.0.0.1:9/x /a /b\n", "Dockerfile line 2: '127.0.0.1:9/x' is in the registry 127.0.0.1:9")]
    [InlineData("# escape=`\nFROM `\n  localhost:1/x\n", "Dockerfile line 2: 'localhost:1/x' is in the registry localhost:1")]
    [InlineData("FROM \\\n# a comment\n  evil.io/x\n", "Dockerfile line 1: 'evil.io/x' is in the registry evil.io")]
    [InlineData("ARG BASE=evil.io/x\nFROM $BASE\n", "Dockerfile line 2: 'evil.io/x' is in the registry evil.io")]
    [InlineData("FROM $NOPE\n", "Dockerfile line 1: the image '$NOPE' is named through a variable")]
    [InlineData("FROM busybox\nRUN --mount=type=bind,from=evil.io/x,target=/a true\n", "Dockerfile line 2: 'evil.io/x' is in the registry evil.io")]
    [InlineData("FROM busybox\nONBUILD COPY --from=busybox /a /b\n", "Dockerfile line 2: ONBUILD may not name images")]
    [InlineData("FROM busybox\nADD http://169.254.169.254/latest/meta-data /m\n", "Dockerfile line 2: ADD may not fetch URLs")]
    [InlineData("FROM busybox\nADD [\"https://127.0.0.1:5080/healthz\", \"/h\"]\n", "Dockerfile line 2: ADD may not fetch URLs")]
    [InlineData("FROM busybox\nadd git@github.com:acme/web.git /src\n", "Dockerfile line 2: ADD may not fetch URLs")]
    public void Images_from_other_registries_or_unresolvable_names_are_refused_naming_the_line(string dockerfile, string problem)
    {
        var result = DockerfileBases.Rewrite(dockerfile, "reg:5000", ["up.example.com:5000"]);
        Assert.Contains(result.Problems, p => p.StartsWith(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void A_build_log_keeps_the_steps_output_up_to_its_limit_and_the_platforms_lines_always()
    {
        var path = Path.Combine(Path.GetTempPath(), "build-log-" + Guid.NewGuid().ToString("N") + ".log");
        try
        {
            using (var log = new BuildLog(path, 64 * 1024))
            {
                log.Say("building");
                for (var i = 0; i < 10_000; i++) log.Step(new string('x', 100));
                log.Say("failed: because");
            }
            var lines = File.ReadAllLines(path);
            Assert.True(new FileInfo(path).Length < 64 * 1024 + 300, $"{new FileInfo(path).Length} bytes");
            Assert.Equal("==> building", lines[0]);
            Assert.Contains(lines, l => l.StartsWith("==> the log reached", StringComparison.Ordinal));
            Assert.Equal("==> failed: because", lines[^1]);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
