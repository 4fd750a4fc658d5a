using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// A build's base pulls and its push ran as the build account in the Api's own network, the network the Api,
/// PostgreSQL and the agents listen in. Now they run in the build's network, where only the registry's door is open
/// and only while they run; the RUN steps, in the same network, find it closed.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildRegistryNetworkAttackTests
{
    /// <summary>Whether the build account can open a TCP connection to <paramref name="port"/> on this machine's loopback (the host's network).</summary>
    private static async Task<(bool Connected, string Error)> AccountConnectsAsync(int uid, int gid, int port)
    {
        var tried = await Run.ToolAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "bash", "-c", $"exec 3<>/dev/tcp/127.0.0.1/{port}"]);
        return (tried.Succeeded, tried.Stderr.Trim());
    }

    [Fact]
    public async Task A_build_pulls_and_pushes_from_its_own_network_while_the_build_account_is_shut_out_of_the_hosts_and_its_RUN_steps_find_the_door_closed()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var source = await BuildKit.GitAppAsync(cluster, "doors");
        // A first build makes the build account (and proves the app builds at all).
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nRUN echo one > /one\n" }, "one");
        await BuildKit.WaitForBuildAsync(cluster, "doors", 1, "Succeeded");
        var account = (await Run.ToolAsync("getent", ["passwd", "platform-build"])).EnsureSuccess("getent").Stdout.Split(':');
        var (uid, gid) = (int.Parse(account[2]), int.Parse(account[3]));
        var port = cluster.Host.BaseAddress.Port;

        // The control for the probe: from the host's network the account reaches the registry, until the rule below.
        var before = await AccountConnectsAsync(uid, gid, port);
        Assert.True(before.Connected, before.Error);
        string[] rule = ["OUTPUT", "-m", "owner", "--uid-owner", uid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-j", "REJECT"];
        (await Run.ToolAsync("iptables", ["-w", "-I", .. rule])).EnsureSuccess("iptables -I");
        try
        {
            var shut = await AccountConnectsAsync(uid, gid, port);
            Assert.False(shut.Connected, "the rule did not shut the build account out of the host's network");

            // The build pulls its base, runs, and pushes all the same: none of it used the host's network. Its RUN step tries
            // the registry's address from the build network (closed during bud) beside a listener of its own (the control).
            await source.PushAsync(new Dictionary<string, string>
            {
                ["Dockerfile"] = $"""
                    FROM busybox
                    RUN (nc -l -p 9999 </dev/null &); sleep 0.5; nc -w 2 127.0.0.1 9999 </dev/null && echo CONTROL-REACHED; nc -w 2 127.0.0.1 {port} </dev/null && echo REGISTRY-REACHED || echo REGISTRY-CLOSED
                    """,
            }, "two");
            var built = await BuildKit.WaitForBuildAsync(cluster, "doors", 2, "Succeeded");
            var log = (await cluster.Admin.GetStringAsync($"{cluster.Apps}/doors/builds/2/log")).Split('\n');
            Assert.Contains(log, l => l.Contains("pulled the bases from the build's network (", StringComparison.Ordinal) && !l.Contains("(0 connection", StringComparison.Ordinal));
            Assert.Contains(log, l => l.Contains("pushed from the build's network (", StringComparison.Ordinal) && !l.Contains("(0 connection", StringComparison.Ordinal));
            Assert.Contains(log, l => l.TrimEnd().EndsWith("CONTROL-REACHED", StringComparison.Ordinal));
            Assert.Contains(log, l => l.TrimEnd().EndsWith("REGISTRY-CLOSED", StringComparison.Ordinal));
            Assert.DoesNotContain(log, l => l.TrimEnd().EndsWith("REGISTRY-REACHED", StringComparison.Ordinal));
            Assert.False(string.IsNullOrEmpty(built.GetProperty("imageDigest").GetString()), built.ToString());
        }
        finally
        {
            await Run.ToolAsync("iptables", ["-w", "-D", .. rule]);
        }
    }
}
