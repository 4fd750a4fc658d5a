using Platform.Contracts;

namespace Platform.NodeAgent.Instances;

/// <summary>
/// What an <see cref="InstanceWorker"/> last published of its instance: immutable, so the sync loop, the
/// status reporter and the control server read it without locks while the worker alone changes state.
/// <see cref="NextAttempt"/> is when an exited or failed instance is tried again.
/// </summary>
public sealed record InstanceSnapshot(
    DesiredInstance Desired, string State, int Restarts, int? ExitCode, string? Reason, string? Message,
    int? HostPort, DateTime? StartedAt, DateTime? NextAttempt = null, bool Removing = false, bool Removed = false)
{
    public Guid Id => Desired.Id;

    /// <summary>Its process runs (Starting while not yet ready, Ready, NotReady, or Stopping until it ends).</summary>
    public bool Running { get; init; }

    public InstanceReport Report(long cpuMillicores, long memoryBytes) =>
        new(Id, State, Restarts, ExitCode, Reason, Message, HostPort, Running ? StartedAt : null, Running ? cpuMillicores : 0, Running ? memoryBytes : 0);
}
