using System.Text.Json.Nodes;
using static BenchKit;

/// <summary>
/// The baseline by hand, with the tools alone and none of the platform's code: a named network
/// name-space (<c>ip netns add</c>), the CNI reference plugins of /usr/lib/cni run directly with their
/// JSON on stdin (<c>loopback</c>; <c>bridge</c> with host-local IPAM in a lease folder of its own;
/// <c>portmap</c> given the bridge's result), then <c>runc run -d</c> of a bundle. Teardown is the
/// reverse: <c>runc delete -f</c>, CNI DEL (portmap, bridge, loopback) while the name-space still exists
/// (a DEL against a dead one leaks NAT rules), then <c>ip netns del</c>.
/// </summary>
public sealed class RawRuntime(string work, string bridge, string subnet)
{
    private const string CniBin = "/usr/lib/cni";
    private readonly string _ipam = Directory.CreateDirectory(Path.Combine(work, "raw-ipam")).FullName;
    private readonly string _runcRoot = Path.Combine(work, "raw-runc");
    private readonly Dictionary<string, JsonNode> _results = [];

    public static string Namespace(string id) => "rawbench-" + id;

    public static string NamespacePath(string id) => "/var/run/netns/" + Namespace(id);

    private JsonObject Bridge() => new()
    {
        ["type"] = "bridge", ["bridge"] = bridge, ["isGateway"] = true, ["ipMasq"] = true, ["hairpinMode"] = true,
        ["ipam"] = new JsonObject
        {
            ["type"] = "host-local", ["dataDir"] = _ipam,
            ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = subnet })),
            ["routes"] = new JsonArray(new JsonObject { ["dst"] = "0.0.0.0/0" }),
        },
    };

    private static JsonObject Portmap(int hostPort, int containerPort) => new()
    {
        ["type"] = "portmap", ["snat"] = true,
        ["capabilities"] = new JsonObject { ["portMappings"] = true },
        ["runtimeConfig"] = new JsonObject
        {
            ["portMappings"] = new JsonArray(new JsonObject { ["hostPort"] = hostPort, ["containerPort"] = containerPort, ["protocol"] = "tcp" }),
        },
    };

    /// <summary>One plugin call: its configuration on stdin, the CNI_* variables naming the command and the container.</summary>
    private async Task<JsonNode?> CniAsync(string command, string id, JsonObject plugin, JsonNode? prevResult)
    {
        plugin["cniVersion"] = "1.0.0";
        plugin["name"] = bridge;
        if (prevResult is not null) plugin["prevResult"] = prevResult.DeepClone();
        var env = new Dictionary<string, string?>
        {
            ["CNI_COMMAND"] = command, ["CNI_CONTAINERID"] = id, ["CNI_NETNS"] = NamespacePath(id), ["CNI_IFNAME"] = "eth0", ["CNI_PATH"] = CniBin,
        };
        var output = await Check(Tool(env, plugin.ToJsonString(), Path.Combine(CniBin, plugin["type"]!.GetValue<string>())));
        return command == "ADD" && output.Length > 0 ? JsonNode.Parse(output) : null;
    }

    /// <summary>The name-space and its network: loopback up, an address on the bridge, <paramref name="hostPort"/> forwarded to <paramref name="containerPort"/>.</summary>
    public async Task NetworkUpAsync(string id, int hostPort, int containerPort)
    {
        await Check(Tool("ip", "netns", "add", Namespace(id)));
        await CniAsync("ADD", id, new JsonObject { ["type"] = "loopback" }, null);
        var result = await CniAsync("ADD", id, Bridge(), null);
        _results[id] = await CniAsync("ADD", id, Portmap(hostPort, containerPort), result) ?? result!;
    }

    /// <summary><c>runc run -d</c>: returns once runc has started the container and left; no pipe of ours stays open in it.</summary>
    public Task RunAsync(string id, string bundle) =>
        Check(Tool("sh", "-c", "exec \"$@\" </dev/null >/dev/null 2>&1", "sh", "runc", "--root", _runcRoot, "run", "-d", "--bundle", bundle, id));

    public async Task RemoveAsync(string id, int hostPort, int containerPort)
    {
        await Tool("runc", "--root", _runcRoot, "delete", "-f", id);
        var result = _results.GetValueOrDefault(id);
        await CniAsync("DEL", id, Portmap(hostPort, containerPort), result);
        await CniAsync("DEL", id, Bridge(), result);
        await CniAsync("DEL", id, new JsonObject { ["type"] = "loopback" }, null);
        await Check(Tool("ip", "netns", "del", Namespace(id)));
        _results.Remove(id);
    }

    /// <summary>The bridge the bridge plugin made (CNI DEL leaves it).</summary>
    public Task RemoveBridgeAsync() => Tool("ip", "link", "del", bridge);
}
