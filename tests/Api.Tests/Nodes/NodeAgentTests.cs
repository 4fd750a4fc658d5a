using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;

namespace Platform.Api.Tests.Nodes;

/// <summary>The real NodeAgent process against a real Api: join once, heartbeats, Ready and NotReady.</summary>
public sealed class NodeAgentTests
{
    internal static string AgentDll() => Built.Dll("NodeAgent", "Platform.NodeAgent");

    private static Process StartAgent(PlatformHost host, string name, string dataDir, string? joinToken) =>
        Built.Start("dotnet", [AgentDll()], new Dictionary<string, string>
        {
            ["Agent__ApiUrl"] = host.BaseAddress.ToString(), ["Agent__NodeName"] = name, ["Agent__DataDir"] = dataDir,
            ["Agent__JoinToken"] = joinToken ?? "", ["Agent__Address"] = "127.0.0.1",
        }, logFile: null);

    private static async Task<JsonElement> WaitForStateAsync(PlatformHost host, string name, string state, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement node = default;
        while (DateTime.UtcNow < deadline)
        {
            var nodes = await host.Admin().GetFromJsonAsync<JsonElement>("/api/v1/nodes");
            node = nodes.GetProperty("items").EnumerateArray().FirstOrDefault(n => n.GetProperty("name").GetString() == name);
            if (node.ValueKind == JsonValueKind.Object && node.GetProperty("state").GetString() == state) return node;
            await Task.Delay(200);
        }
        Assert.Fail($"node {name} did not become {state} within {seconds} s: {node}");
        return node;
    }

    [Fact]
    public async Task An_agent_joins_once_reports_its_capacity_and_goes_NotReady_when_it_stops()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?>
        {
            ["Platform:Nodes:HeartbeatSeconds"] = "1",
            ["Platform:Nodes:NotReadyAfterSeconds"] = "3",
        });
        var join = await host.Admin().PostAsJsonAsync("/api/v1/nodes/join-tokens", new { }).ShouldBeAsync(HttpStatusCode.Created);
        var name = "agent-" + Guid.NewGuid().ToString("N")[..6];
        var dataDir = Path.Combine(host.DataDir, "agent");

        var agent = StartAgent(host, name, dataDir, join.GetProperty("token").GetString());
        try
        {
            var ready = await WaitForStateAsync(host, name, "Ready", 30);
            Assert.True(ready.GetProperty("capacity").GetProperty("memoryMiB").GetInt64() > 0);
            Assert.Equal(Environment.ProcessorCount * 1000L, ready.GetProperty("capacity").GetProperty("cpuMillicores").GetInt64());
            Assert.True(ready.GetProperty("allocatable").GetProperty("memoryMiB").GetInt64() < ready.GetProperty("capacity").GetProperty("memoryMiB").GetInt64());
            Assert.Equal("127.0.0.1", ready.GetProperty("address").GetString());
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dataDir, "credentials.json")));
        }
        finally
        {
            agent.Kill(entireProcessTree: true);
            await agent.WaitForExitAsync();
        }
        await WaitForStateAsync(host, name, "NotReady", 15);

        // A restart reuses the node's own credentials: the join token was spent and is not needed again.
        var again = StartAgent(host, name, dataDir, joinToken: null);
        try
        {
            await WaitForStateAsync(host, name, "Ready", 30);
        }
        finally
        {
            again.Kill(entireProcessTree: true);
            await again.WaitForExitAsync();
        }
        var nodes = await host.Admin().GetFromJsonAsync<JsonElement>("/api/v1/nodes");
        Assert.Single(nodes.GetProperty("items").EnumerateArray(), n => n.GetProperty("name").GetString() == name);
    }

    [Fact]
    public async Task Heartbeats_are_for_joined_nodes_only()
    {
        await using var host = new PlatformHost(Provider.Sqlite);
        var body = new { capacity = new { memoryMiB = 1024, cpuMillicores = 1000 }, runningInstances = 0 };
        await host.Admin().PostAsJsonAsync("/api/v1/nodes/heartbeat", body).ShouldBeAsync(HttpStatusCode.Forbidden);
        await host.Http().PostAsJsonAsync("/api/v1/nodes/heartbeat", body).ShouldBeAsync(HttpStatusCode.Unauthorized);
    }
}
