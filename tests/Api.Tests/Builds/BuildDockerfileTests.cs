using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds;

/// <summary>Dockerfiles as people write them: FROM scratch, FROM an earlier stage, COPY --from a stage, FROM --platform. Real buildah.</summary>
[Collection("runtime")]
public sealed class BuildDockerfileTests
{
    [Fact]
    public async Task A_multi_stage_build_with_platform_earlier_stages_and_scratch_builds_an_image_of_only_its_copies()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var source = await BuildKit.GitAppAsync(cluster, "stages");
        await source.PushAsync(new Dictionary<string, string>
        {
            ["Dockerfile"] = """
                FROM --platform=linux/amd64 busybox AS tools
                RUN echo staged > /staged.txt
                FROM tools AS again
                RUN echo "read back: $(cat /staged.txt)"
                FROM scratch
                COPY --from=again /bin/busybox /bin/busybox
                COPY --from=0 /staged.txt /staged.txt
                CMD ["/bin/busybox", "cat", "/staged.txt"]
                """,
        }, "stages");
        var build = await BuildKit.WaitForBuildAsync(cluster, "stages", 1, "Succeeded");
        Assert.Contains("read back: staged", await cluster.Admin.GetStringAsync($"{cluster.Apps}/stages/builds/1/log"));

        // FROM scratch stayed scratch: the image is its two COPY layers and nothing of busybox's base.
        var manifest = (await Run.ToolAsync("skopeo", ["inspect", "--raw", "--tls-verify=false", "--creds=admin:" + PlatformHost.AdminToken,
            $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/stages@{build.GetProperty("imageDigest").GetString()}"])).EnsureSuccess("skopeo inspect");
        Assert.Equal(2, JsonDocument.Parse(manifest.Stdout).RootElement.GetProperty("layers").GetArrayLength());
    }
}
