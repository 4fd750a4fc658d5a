using System.Text.Json.Serialization;

namespace Platform.Contracts;

/// <summary>The states an instance goes through, as agents report them and the Api shows them.</summary>
public static class InstanceStates
{
    /// <summary>Placed on a node; the agent has not reported it yet.</summary>
    public const string Pending = "Pending";
    /// <summary>
    /// The agent is pulling the image, mounting the root file system, wiring the network, or the process runs and
    /// its readiness probe has not passed yet (the message says which). Not routed.
    /// </summary>
    public const string Starting = "Starting";
    /// <summary>The process runs and its readiness probe passes (or the app has none): the router sends it traffic.</summary>
    public const string Ready = "Ready";
    /// <summary>It was Ready and its readiness probe failed as often as its failure threshold: out of the rotation until it passes again.</summary>
    public const string NotReady = "NotReady";
    /// <summary>Removed from the node's desired state: out of the rotation, then SIGTERM, its grace period, SIGKILL.</summary>
    public const string Stopping = "Stopping";
    /// <summary>Exited; the agent restarts it after a back-off.</summary>
    public const string Restarting = "Restarting";
    /// <summary>Exited again and again: restarts continue at the longest back-off.</summary>
    public const string CrashLoop = "CrashLoop";
    /// <summary>Could not be started at all (image missing, bad command); retried with back-off.</summary>
    public const string Failed = "Failed";

    public static readonly IReadOnlySet<string> All = new HashSet<string> { Pending, Starting, Ready, NotReady, Stopping, Restarting, CrashLoop, Failed };
}

/// <summary>How a probe asks an instance whether it is ready (or alive).</summary>
public static class ProbeTypes
{
    /// <summary>A TCP connection to the app's port is accepted.</summary>
    public const string Tcp = "tcp";
    /// <summary>An HTTP GET of the path on the app's port answers with a status in the range.</summary>
    public const string Http = "http";
    /// <summary>No probe: ready as soon as the process runs (for workers that listen on nothing).</summary>
    public const string Process = "process";

    public static readonly IReadOnlySet<string> All = new HashSet<string> { Tcp, Http, Process };
}

/// <summary>
/// A probe as the agent runs it, every member resolved: the first one <paramref name="InitialDelaySeconds"/> after the
/// process started, then every <paramref name="IntervalSeconds"/>, each given <paramref name="TimeoutSeconds"/>;
/// <paramref name="SuccessThreshold"/> passes in a row make it pass, <paramref name="FailureThreshold"/> failures in a row make it fail.
/// </summary>
public sealed record ProbeSpec(
    string Type, string? Path, int StatusMin, int StatusMax, int IntervalSeconds, int TimeoutSeconds,
    int SuccessThreshold, int FailureThreshold, int InitialDelaySeconds);

/// <summary>One instance a node must run: what the agent needs to pull, configure and start it.</summary>
/// <remarks>
/// <paramref name="Readiness"/> null: ready once running; <paramref name="Liveness"/> null: none. Probes and the grace
/// period apply to a running instance at once (they change no generation).
/// </remarks>
public sealed record DesiredInstance(
    Guid Id, string Team, string Project, Guid ProjectId, string App, int Generation,
    string Image, IReadOnlyDictionary<string, string> Env, int Port, int MemoryMiB, int CpuMillicores,
    ProbeSpec? Readiness = null, ProbeSpec? Liveness = null, int StopGraceSeconds = 10);

/// <summary>A node's whole desired state at one revision (a snapshot, not a delta: set difference does the rest).</summary>
public sealed record DesiredState(long Revision, IReadOnlyList<DesiredInstance> Instances);

/// <summary>What an agent observes of one instance.</summary>
public sealed record InstanceReport(
    Guid Id, string State, int Restarts, int? ExitCode, string? Reason, string? Message, int? HostPort,
    DateTime? StartedAt, long UsedCpuMillicores, long UsedMemoryBytes);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NodeStatusReport(IReadOnlyList<InstanceReport>? Instances);

public sealed record InstanceResponse(
    string Id, string Node, string State, int Restarts, int? ExitCode, string? Reason, string? Message,
    string Image, int Generation, DateTime CreatedAt, DateTime? StartedAt, long UsedCpuMillicores, long UsedMemoryBytes);
