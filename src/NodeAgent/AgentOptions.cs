using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent;

/// <summary>The <c>Agent</c> configuration section (docs/operations.md, "Node agents").</summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";
    public string? ApiUrl { get; set; }
    public string? JoinToken { get; set; }
    public string DataDir { get; set; } = "./agent-data";
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();
    public string Address { get; set; } = "127.0.0.1";
    /// <summary>Memory and CPU kept for the system and the agent, not offered to instances.</summary>
    public long ReservedMemoryMiB { get; set; } = 256;
    public long ReservedCpuMillicores { get; set; } = 100;
    /// <summary>Cgroup parent of this agent's containers (two agents on one machine need two).</summary>
    public string? CgroupParent { get; set; }
    /// <summary>Prefix of the per-project bridges (at most 8 characters: the slot number follows).</summary>
    public string BridgePrefix { get; set; } = "plat";
    public string CniBin { get; set; } = "/usr/lib/cni";
    /// <summary>Host ports handed to instances for the router.</summary>
    public int PortRangeStart { get; set; } = 20000;
    public int PortRangeSize { get; set; } = 10000;
    /// <summary>The agent's control endpoint (logs, for the Api); 0 picks a free port, reported in heartbeats.</summary>
    public int ControlPort { get; set; }
    /// <summary>The longest grace period (SIGTERM to SIGKILL) an app's instances get on this node; each app sets its own below it.</summary>
    public int StopGraceSeconds { get; set; } = 600;
    public int MaxParallelStarts { get; set; } = 8;
    public long LogMaxBytes { get; set; } = 10 * 1024 * 1024;
    public int PidsLimit { get; set; } = 1024;
    /// <summary>Second octet of the first project subnet (10.{base}.0.0/24; slots use 8 × 256 subnets from it).</summary>
    public int SubnetBase { get; set; } = 88;
    /// <summary>What one layer may expand to when unpacked (the registry's quota counts compressed bytes; a gzip bomb stops here).</summary>
    public long MaxLayerBytes { get; set; } = Images.LayerStore.DefaultMaxLayerBytes;
    /// <summary>What all the layers of one image may expand to together.</summary>
    public long MaxImageBytes { get; set; } = Images.ImageLimits.DefaultMaxImageBytes;
    /// <summary>The largest image config and manifest the agent reads (each is read whole into memory).</summary>
    public long MaxConfigBytes { get; set; } = 4 << 20;
    public long MaxManifestBytes { get; set; } = 4 << 20;
    /// <summary>
    /// Non-public IPv4 ranges (CIDR) instances may reach, e.g. an in-house service; by default none: instances
    /// reach the internet and their own project's instances only (<see cref="Runtime.InstanceFirewall"/>).
    /// </summary>
    public List<string> AllowedPrivateRanges { get; set; } = [];
    /// <summary>The host's seccomp profile (Docker's format), preferred when present; the embedded default otherwise.</summary>
    public string SeccompProfile { get; set; } = Seccomp.DefaultProfilePath;

    public AgentLayout Layout => AgentLayout.For(DataDir);

    public RuntimeSettings Runtime(string registry) => new(Layout, CgroupParent ?? "platform-" + NodeName, BridgePrefix, CniBin,
        PortRangeStart, PortRangeSize, TimeSpan.FromSeconds(StopGraceSeconds), MaxParallelStarts, LogMaxBytes, PidsLimit, SubnetBase, registry,
        AllowedPrivateRanges, SeccompProfile);
}

public sealed class AgentOptionsValidator : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ApiUrl) || !Uri.TryCreate(o.ApiUrl, UriKind.Absolute, out _))
            errors.Add($"Agent:ApiUrl must be the Api's absolute URL (got '{o.ApiUrl}').");
        if (Names.Validate(o.NodeName) is { } bad)
            errors.Add($"Agent:NodeName '{o.NodeName}' {bad}");
        if (string.IsNullOrEmpty(o.BridgePrefix) || o.BridgePrefix.Length > 8 || !o.BridgePrefix.All(char.IsAsciiLetterLower))
            errors.Add($"Agent:BridgePrefix '{o.BridgePrefix}' must be 1 to 8 lower-case letters.");
        if (o.PortRangeStart is < 1024 or > 65535 || o.PortRangeSize < 1 || o.PortRangeStart + o.PortRangeSize > 65536)
            errors.Add("Agent:PortRangeStart and PortRangeSize must describe ports within 1024–65535.");
        if (o.SubnetBase is < 1 or > 247) errors.Add("Agent:SubnetBase must be between 1 and 247 (10.{base}.0.0/24 to 10.{base+7}.255.0/24).");
        foreach (var range in o.AllowedPrivateRanges.Where(r => !Platform.Host.Linux.AddressRanges.IsIPv4Cidr(r)))
            errors.Add($"Agent:AllowedPrivateRanges: '{range}' is not an IPv4 range in CIDR notation (such as 10.20.0.0/16).");
        if (o.ControlPort is < 0 or > 65535) errors.Add("Agent:ControlPort must be 0 (any free port) or a port number.");
        if (o.MaxLayerBytes < 1 || o.MaxImageBytes < 1 || o.MaxConfigBytes < 1 || o.MaxManifestBytes < 1)
            errors.Add("Agent:MaxLayerBytes, MaxImageBytes, MaxConfigBytes and MaxManifestBytes must be positive byte counts.");
        if (string.IsNullOrWhiteSpace(o.DataDir)) errors.Add("Agent:DataDir must be set.");
        else if (UntraversableParent(o.Layout.Root) is { } closed)
            errors.Add($"Agent:DataDir '{o.Layout.Root}' is inside '{closed}', which others may not enter (mode {Mode(closed)}): the containers' "
                + "mapped users could not reach their root file systems (runc: \"mount …/rootfs: permission denied\"). Put the data folder "
                + $"elsewhere (for example /var/lib/platform-agent), or allow others through '{closed}' (chmod o+x).");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>
    /// The first existing folder from / down to <paramref name="path"/> (itself included, when it exists) that
    /// others cannot traverse. Container root is an unprivileged host id, an "other" to every folder on the way.
    /// </summary>
    public static string? UntraversableParent(string path)
    {
        var full = Path.GetFullPath(path);
        var current = "/";
        foreach (var part in full.Split('/', StringSplitOptions.RemoveEmptyEntries).Prepend(""))
        {
            current = part.Length == 0 ? "/" : Path.Combine(current, part);
            if (!Directory.Exists(current)) return null;   // the agent makes the rest (0755/0711)
            var mode = File.GetUnixFileMode(current);
            if (!mode.HasFlag(UnixFileMode.OtherExecute)) return current;
        }
        return null;
    }

    private static string Mode(string path) => Convert.ToString((int)File.GetUnixFileMode(path) & 0x1FF, 8).PadLeft(4, '0');
}
