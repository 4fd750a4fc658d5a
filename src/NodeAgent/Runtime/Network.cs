using System.Text.Json;
using System.Text.Json.Nodes;
using Platform.Host.Linux;
using Platform.Host.Processes;

namespace Platform.NodeAgent.Runtime;

/// <summary>A project's network on this node: its own bridge and subnet.</summary>
public sealed record ProjectNetwork(string Bridge, string Subnet);

/// <summary>What CNI gave an instance.</summary>
public sealed record Attachment(string Namespace, string NamespacePath, string Address, int? HostPort);

/// <summary>
/// Instance networking through the CNI reference plugins: a named network name-space per instance,
/// then <c>loopback</c>, <c>bridge</c> (one bridge and subnet per project, host-local IPAM with the
/// agent's own lease folder, masquerade) and <c>portmap</c> (the host port the router uses). Projects
/// cannot reach each other: traffic from one platform bridge to another is dropped in the
/// PLATFORM-ISOLATION chain; what else they may reach is <see cref="InstanceFirewall"/>'s, installed before the
/// first attachment. Teardown runs DEL in reverse order before deleting the name-space
/// (a DEL against a dead name-space leaks NAT rules), which also releases the IP lease.
/// </summary>
public sealed class Network(string cniBin, string ipamDir, string bridgePrefix = "plat", IReadOnlyList<string>? allowedPrivateRanges = null)
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(30);
    public const string IsolationChain = "PLATFORM-ISOLATION";
    /// <summary>Bridges whose isolation rules this process has checked: each costs five iptables runs, which slow down as the table grows.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _isolated = new();

    public InstanceFirewall Firewall { get; } = new(bridgePrefix, allowedPrivateRanges ?? []);

    private JsonObject Config(ProjectNetwork net, int? hostPort, int containerPort) => new()
    {
        ["cniVersion"] = "1.0.0",
        ["name"] = net.Bridge,
        ["plugins"] = new JsonArray(
            new JsonObject
            {
                ["type"] = "bridge", ["bridge"] = net.Bridge, ["isGateway"] = true, ["ipMasq"] = true, ["hairpinMode"] = true,
                ["ipam"] = new JsonObject
                {
                    ["type"] = "host-local", ["dataDir"] = ipamDir,
                    ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = net.Subnet })),
                    ["routes"] = new JsonArray(new JsonObject { ["dst"] = "0.0.0.0/0" }),
                },
            },
            new JsonObject
            {
                ["type"] = "portmap", ["snat"] = true,
                ["capabilities"] = new JsonObject { ["portMappings"] = true },
                ["runtimeConfig"] = new JsonObject
                {
                    ["portMappings"] = hostPort is { } hp
                        ? new JsonArray(new JsonObject { ["hostPort"] = hp, ["containerPort"] = containerPort, ["protocol"] = "tcp" })
                        : new JsonArray(),
                },
            }),
    };

    private async Task<JsonObject?> PluginAsync(string command, JsonObject plugin, string network, string id, string nsPath, JsonObject? prevResult, CancellationToken ct)
    {
        var conf = (JsonObject)plugin.DeepClone();
        conf["cniVersion"] = "1.0.0";
        conf["name"] = network;
        if (prevResult is not null) conf["prevResult"] = prevResult.DeepClone();
        var env = new Dictionary<string, string?>
        {
            ["CNI_COMMAND"] = command, ["CNI_CONTAINERID"] = id, ["CNI_NETNS"] = nsPath, ["CNI_IFNAME"] = "eth0", ["CNI_PATH"] = cniBin,
        };
        var type = plugin["type"]!.GetValue<string>();
        var r = await ProcessRunner.RunAsync(Path.Combine(cniBin, type), [], ct, Quick, env, conf.ToJsonString());
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"CNI {type} {command} failed: {r.Stdout.Trim()} {r.Stderr.Trim()}");
        return command == "ADD" && r.Stdout.Length > 0 ? JsonNode.Parse(r.Stdout)!.AsObject() : null;
    }

    /// <summary>The network name-space of an instance's container.</summary>
    public static string NamespaceOf(string containerId) => "plat-" + containerId;

    private static JsonObject Loopback => new() { ["type"] = "loopback" };

    public async Task<Attachment> AttachAsync(string instanceId, ProjectNetwork net, int? hostPort, int containerPort, CancellationToken ct)
    {
        await Firewall.EnsureAsync(ct);   // no instance gets a network before the firewall is in place
        var ns = NamespaceOf(instanceId);
        var nsPath = NetworkNamespaces.PathOf(ns);
        await NetworkNamespaces.AddAsync(ns, ct);
        try
        {
            var config = Config(net, hostPort, containerPort);
            await PluginAsync("ADD", Loopback, net.Bridge, instanceId, nsPath, null, ct);
            JsonObject? result = null;
            foreach (var plugin in config["plugins"]!.AsArray().Select(p => p!.AsObject()))
                result = await PluginAsync("ADD", plugin, net.Bridge, instanceId, nsPath, result, ct) ?? result;
            await File.WriteAllTextAsync(Path.Combine(ipamDir, $"{instanceId}.result.json"), result!.ToJsonString(), ct);
            await IsolateAsync(net.Bridge, ct);
            await InstanceFirewall.DisableIPv6Async(net.Bridge, ct);
            var address = result["ips"]![0]!["address"]!.GetValue<string>().Split('/')[0];
            return new Attachment(ns, nsPath, address, hostPort);
        }
        catch
        {
            await DetachAsync(instanceId, net, hostPort, containerPort, CancellationToken.None);
            throw;
        }
    }

    /// <summary>DEL in reverse order while the name-space still exists, then the name-space. Safe to repeat.</summary>
    public async Task DetachAsync(string instanceId, ProjectNetwork net, int? hostPort, int containerPort, CancellationToken ct)
    {
        var ns = NamespaceOf(instanceId);
        var nsPath = NetworkNamespaces.PathOf(ns);
        var resultFile = Path.Combine(ipamDir, $"{instanceId}.result.json");
        var prev = File.Exists(resultFile) ? JsonNode.Parse(await File.ReadAllTextAsync(resultFile, ct))!.AsObject() : null;
        var plugins = Config(net, hostPort, containerPort)["plugins"]!.AsArray().Select(p => p!.AsObject()).Reverse().ToList();
        var errors = new List<string>();
        foreach (var plugin in plugins)
        {
            try { await PluginAsync("DEL", plugin, net.Bridge, instanceId, nsPath, prev, ct); }
            catch (InvalidOperationException e) { errors.Add(e.Message); }
        }
        if (File.Exists(nsPath))
        {
            try { await PluginAsync("DEL", Loopback, net.Bridge, instanceId, nsPath, null, ct); }
            catch (InvalidOperationException e) { errors.Add(e.Message); }
            await NetworkNamespaces.DeleteAsync(ns, ct);
        }
        File.Delete(resultFile);
        if (errors.Count > 0) throw new InvalidOperationException(string.Join("; ", errors));
    }

    /// <summary>Deletes a project's bridge and its isolation rules once no instance of the project is left on it.</summary>
    public async Task RemoveBridgeAsync(ProjectNetwork net, CancellationToken ct)
    {
        _isolated.TryRemove(net.Bridge, out _);
        string[] same = ["-i", net.Bridge, "-o", net.Bridge, "-j", "RETURN"];
        string[] others = ["-i", net.Bridge, "-o", bridgePrefix + "+", "-j", "DROP"];
        foreach (var rule in new[] { same, others })
            await Iptables.DeleteRuleAsync(null, IsolationChain, rule, ct);
        await ProcessRunner.RunAsync("ip", ["link", "del", net.Bridge], ct, Quick);
    }

    /// <summary>Traffic entering from a platform bridge may leave only through the same bridge or towards the host's uplinks.</summary>
    private async Task IsolateAsync(string bridge, CancellationToken ct)
    {
        if (_isolated.ContainsKey(bridge)) return;
        await Iptables.EnsureChainAsync(null, IsolationChain, ct);
        await Iptables.EnsureRuleAsync(null, "FORWARD", ["-j", IsolationChain], first: true, ct);
        string[] same = ["-i", bridge, "-o", bridge, "-j", "RETURN"];
        string[] others = ["-i", bridge, "-o", bridgePrefix + "+", "-j", "DROP"];
        foreach (var rule in new[] { same, others })
            await Iptables.EnsureRuleAsync(null, IsolationChain, rule, first: false, ct);
        _isolated[bridge] = true;
    }
}
