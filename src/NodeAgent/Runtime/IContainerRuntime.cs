using Platform.Contracts;

namespace Platform.NodeAgent.Runtime;

/// <summary>What the agent keeps on disk per instance, enough to adopt and tear it down after a restart.</summary>
public sealed record InstanceRecord(DesiredInstance Desired, int Slot, int HostPort, DateTime? StartedAt, IReadOnlyList<string>? Layers = null);

/// <summary>How an instance ended: its exit code, and whether the kernel's OOM killer ended it.</summary>
public sealed record ExitInfo(int ExitCode, bool OomKilled)
{
    public string Reason => OomKilled ? "OOMKilled" : ExitCode == 0 ? "Completed" : "Error";
}

/// <summary>What a previous run of the agent left of one instance.</summary>
public enum RecoveredState
{
    /// <summary>Its container still runs: it is adopted, never restarted.</summary>
    Running,
    /// <summary>It ended while the agent was away (<see cref="RecoveredInstance.Exit"/> says how).</summary>
    Exited,
    /// <summary>The agent stopped while setting it up: it is started again.</summary>
    Interrupted,
}

public sealed record RecoveredInstance(DesiredInstance Desired, RecoveredState State, ExitInfo? Exit, int HostPort, DateTime? StartedAt);

/// <summary>What one probe found: passed or not, and in words (<c>connection refused on :8080</c>, <c>HTTP 503 on /healthz</c>).</summary>
public sealed record ProbeResult(bool Passed, string Detail);

/// <summary>A container the runtime started: the host port the router reaches it on, and when it started.</summary>
public sealed record StartedContainer(int HostPort, DateTime StartedAt);

/// <summary>
/// The seam between the agent's logic (the sync loop and the instance workers) and the machine: image
/// pull, root file system, network and the container itself. The real one is <see cref="RuncRuntime"/>
/// (runc, overlay, CNI); tests drive the logic with an in-memory one. Every call is about one
/// instance, and the worker of that instance is the only caller for it, so calls for one id never overlap.
/// </summary>
public interface IContainerRuntime
{
    /// <summary>What a previous run of the agent left (called once, before any other call).</summary>
    Task<IReadOnlyList<RecoveredInstance>> RecoverAsync(CancellationToken ct);

    /// <summary>
    /// Starts the instance: pulls its image, prepares its root file system, network and spec, runs it. A
    /// restart after an exit reuses what was prepared. A start that fails throws and leaves nothing behind
    /// that would block the next try.
    /// </summary>
    Task<StartedContainer> StartAsync(DesiredInstance desired, CancellationToken ct);

    /// <summary>Completes when the instance's process ends (also one that ended while nobody waited).</summary>
    Task<ExitInfo> WaitForExitAsync(Guid id, CancellationToken ct);

    /// <summary>
    /// Stops the instance (SIGTERM, its grace period, SIGKILL) and removes everything it had on this node (network,
    /// root file system, record, logs).
    /// </summary>
    Task RemoveAsync(Guid id, CancellationToken ct);

    /// <summary>Runs one probe against the running instance, as the router would reach it; <paramref name="ct"/> carries the probe's timeout.</summary>
    Task<ProbeResult> ProbeAsync(Guid id, ProbeSpec probe, CancellationToken ct);

    /// <summary>
    /// Ends the running instance's process (SIGTERM, <paramref name="grace"/>, SIGKILL) and keeps what it was prepared
    /// with, so <see cref="WaitForExitAsync"/> completes and a start runs it again (a liveness restart).
    /// </summary>
    Task KillAsync(Guid id, TimeSpan grace, CancellationToken ct);

    /// <summary>Total CPU time (ns) and memory (bytes) of a running instance, or null when unknown.</summary>
    (long CpuNanos, long MemoryBytes)? Usage(Guid id);

    /// <summary>The folder holding the instance's <c>output.log</c> (and its rotated <c>output.log.1</c>), or null.</summary>
    string? LogFolderOf(Guid id);

    /// <summary>Periodic work that belongs to the machine: rotating logs, collecting unused images (never before <paramref name="desiredKnown"/>).</summary>
    Task HousekeepAsync(DateTime now, bool desiredKnown, CancellationToken ct);
}
