using System.Diagnostics;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Cli;

/// <summary>The <c>platform</c> tool against a real Api and a real node: what it prints is what the containers did.</summary>
[Collection("runtime")]
public sealed class CliNodeTests : IAsyncLifetime
{
    private Cluster _cluster = null!;
    private readonly CliRunner _cli = new(Path.Combine(Path.GetTempPath(), "platform-cli-tests", Guid.NewGuid().ToString("N")[..8]));
    private Dictionary<string, string> _env = [];

    private static string Web(string version) =>
        $"mkdir -p /tmp/www && echo {version} > /tmp/www/index.html && echo {version} serving with GREETING=$GREETING && exec httpd -f -v -p $PORT -h /tmp/www";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_cli.Home);
        _cluster = await Cluster.StartAsync();
        await _cluster.StartAgentAsync("cli-node");
        _env = new() { ["PLATFORM_API"] = _cluster.Host.BaseAddress.ToString(), ["PLATFORM_TOKEN"] = PlatformHost.AdminToken };
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        Directory.Delete(_cli.Home, recursive: true);
    }

    private Task<(int Code, string Out, string Err)> Cli(params string[] args) =>
        _cli.RunAsync([.. args, "-t", Cluster.Team, "-p", Cluster.Project], _env, seconds: 180);

    private static void Ok((int Code, string Out, string Err) r) => Assert.True(r.Code == 0, $"exit {r.Code}\n{r.Err}\n{r.Out}");

    [Fact]
    public async Task Create_deploy_and_wait_logs_followed_live_scale_env_rollback_and_delete_on_a_real_node()
    {
        var v1 = await _cluster.ImageAsync("shop", Web("v1"));
        var v2 = await _cluster.ImageAsync("shopv2", Web("v2"));
        Ok(await Cli("apps", "create", "shop", "--image", v1, "--memory", "64", "--cpu", "100", "-e", "GREETING=hi"));
        await _cluster.WaitForInstancesAsync("shop", 1);

        // deploy --wait follows the rollout on stderr and returns when the new instance serves.
        var deployed = await Cli("deploy", "shop", "--image", v2, "--wait");
        Ok(deployed);
        Assert.Contains("Progressing", deployed.Err);
        Assert.Contains("shop rolled out", deployed.Out);
        using (var r = await _cluster.ThroughRouterAsync("shop")) Assert.Equal("v2\n", await r.Content.ReadAsStringAsync());
        var instances = await Cli("instances", "shop");
        Assert.Matches(@"cli-node\s+Ready", instances.Out);

        var logs = await Cli("logs", "shop", "--tail", "20");
        Assert.Contains("v2 serving with GREETING=hi", logs.Out);

        // logs -f: a line the instance writes after the follower connected arrives on the open stream (httpd -v logs each request).
        using (var follow = Process.Start(_cli.Start(["logs", "shop", "-f", "--tail", "0", "-t", Cluster.Team, "-p", Cluster.Project], _env))!)
        {
            follow.StandardInput.Close();
            var seen = new List<string>();
            var reading = Task.Run(async () =>
            {
                while (await follow.StandardOutput.ReadLineAsync() is { } line)
                {
                    lock (seen) seen.Add(line);
                    if (line.Contains("response:404", StringComparison.Ordinal)) return;   // the request for /followed (no such page)
                }
            });
            // Until the line comes: a request made before the follower's stream was open would be missed (its tail is 0).
            await Cluster.WaitAsync(async () =>
            {
                using var r = await _cluster.ThroughRouterAsync("shop", "/followed");
                return reading.IsCompleted || await Task.WhenAny(reading, Task.Delay(500)) == reading;
            }, 60, () => "the followed logs showed no new line: " + string.Join("\n", seen));
            follow.Kill(entireProcessTree: true);
        }
        Ok(await Cli("scale", "shop", "2"));
        await _cluster.WaitForInstancesAsync("shop", 2);

        // Beyond the team's quota (50 instances): refused with the Api's words, nothing changes.
        var tooMany = await Cli("scale", "shop", "500");
        Assert.Equal(1, tooMany.Code);
        Assert.Contains("instances", tooMany.Err);
        Assert.Equal(2, JsonDocument.Parse((await Cli("apps", "show", "shop", "--json")).Out).RootElement.GetProperty("instances").GetInt32());

        Ok(await Cli("env", "set", "shop", "GREETING=yo"));
        await Cluster.WaitAsync(async () => (await Cli("logs", "shop", "--tail", "50")).Out.Contains("GREETING=yo"), 90, "an instance with the new env");

        // Back to v1: rollback --to the first release, followed until it serves.
        var releases = await Cli("releases", "shop", "--json");
        var first = JsonDocument.Parse(releases.Out).RootElement.GetProperty("items").EnumerateArray().Last().GetProperty("version").GetInt32();
        var rolled = await Cli("rollback", "shop", "--to", first.ToString(System.Globalization.CultureInfo.InvariantCulture), "--wait");
        Ok(rolled);
        await Cluster.WaitAsync(async () =>
        {
            using var r = await _cluster.ThroughRouterAsync("shop");
            return await r.Content.ReadAsStringAsync() == "v1\n";
        }, 60, "v1 served again");

        Ok(await Cli("apps", "delete", "shop", "--yes"));
        var gone = await Cli("instances", "shop");
        Assert.Equal(1, gone.Code);
        Assert.Contains("was not found", gone.Err);
    }
}
