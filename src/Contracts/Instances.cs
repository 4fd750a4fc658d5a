using System.Text.Json.Serialization;

namespace Platform.Contracts;

/// <summary>The states an instance goes through, as agents report them and the Api shows them.</summary>
public static class InstanceStates
{
    /// <summary>Placed on a node; the agent has not reported it yet.</summary>
    public const string Pending = "Pending";
    /// <summary>The agent is pulling the image, mounting the root file system, wiring the network.</summary>
    public const string Starting = "Starting";
    public const string Running = "Running";
    /// <summary>Exited; the agent restarts it after a back-off.</summary>
    public const string Restarting = "Restarting";
    /// <summary>Exited again and again: restarts continue at the longest back-off.</summary>
    public const string CrashLoop = "CrashLoop";
    /// <summary>Could not be started at all (image missing, bad command); retried with back-off.</summary>
    public const string Failed = "Failed";

    public static readonly IReadOnlySet<string> All = new HashSet<string> { Pending, Starting, Running, Restarting, CrashLoop, Failed };
}

/// <summary>One instance a node must run: what the agent needs to pull, configure and start it.</summary>
public sealed record DesiredInstance(
    Guid Id, string Team, string Project, Guid ProjectId, string App, int Generation,
    string Image, IReadOnlyDictionary<string, string> Env, int Port, int MemoryMiB, int CpuMillicores);

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
