using Platform.Api.Builds;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// A RUN that prints without end and without newlines (<c>head -c 8G /dev/zero</c>; busybox has <c>cat /dev/zero</c>): before, the Api gathered
/// it into one string. Now a line keeps its first 64 KiB and a mark, and a step past its output limit is stopped.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildOutputAttackTests
{
    [Fact]
    public async Task A_RUN_printing_zeros_without_end_or_newlines_is_cut_to_64_KiB_lines_and_stopped_at_the_output_limit()
    {
        await using var cluster = await Cluster.StartAsync(settings: new Dictionary<string, string?>(BuildKit.BuildSettings)
        {
            ["Platform:Builds:MaxLogBytes"] = (1024 * 1024).ToString(),
            ["Platform:Builds:MaxStepOutputBytes"] = (8 * 1024 * 1024).ToString(),
        });
        var source = await BuildKit.GitAppAsync(cluster, "loud");

        // The positive control: a long line under the step's limit is cut, the build goes on and the next line is kept.
        await source.PushAsync(new Dictionary<string, string>
        {
            ["Dockerfile"] = "FROM busybox\nRUN head -c 300000 /dev/zero | tr '\\0' b; echo; echo after-the-long-line\n",
        }, "long line");
        await BuildKit.WaitForBuildAsync(cluster, "loud", 1, "Succeeded");
        var lines = (await cluster.Admin.GetStringAsync($"{cluster.Apps}/loud/builds/1/log")).Split('\n');
        Assert.Contains(new string('b', BuildStep.MaxLineBytes) + BuildStep.CutMark, lines);
        Assert.Contains("after-the-long-line", lines);
        Assert.All(lines, l => Assert.True(l.Length <= BuildStep.MaxLineBytes + BuildStep.CutMark.Length, $"a line of {l.Length} characters"));

        // The attack: zeros without end. The step is stopped once it printed 8 MiB; the log holds one cut line.
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN cat /dev/zero\n" }, "zeros");
        var build = await BuildKit.WaitForBuildAsync(cluster, "loud", 2, "Failed");
        var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/loud/builds/2/log");
        Assert.True(build.GetProperty("reason").GetString() == "A step printed more than 8 MiB of output and was stopped.", build + "\n" + log.Replace("\0", ""));
        Assert.Contains(new string('\0', BuildStep.MaxLineBytes) + BuildStep.CutMark, log);
        Assert.True(log.Length < 1024 * 1024, $"the log has {log.Length} characters");
    }
}
