using Platform.Contracts;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Instances;

/// <summary>
/// One probe of one running process (kubelet's prober worker, in small): when it is due next, how many passes or
/// failures in a row it has seen, and its verdict once a threshold is reached — null until then. Owned by the
/// instance's worker; a new process (a restart) gets a new tracker, first due after the probe's initial delay.
/// </summary>
public sealed class ProbeTracker(string name, ProbeSpec spec, DateTime firstDue)
{
    private int _passes;
    private int _failures;

    public string Name { get; } = name;
    public ProbeSpec Spec { get; private set; } = spec;
    public DateTime NextDue { get; private set; } = firstDue;

    /// <summary>True once it passed <c>SuccessThreshold</c> times in a row, false once it failed <c>FailureThreshold</c> times in a row.</summary>
    public bool? Passing { get; private set; }

    /// <summary>The last failure in words, with its count: <c>readiness: connection refused on :8080 (2 of 3)</c>; null after a pass.</summary>
    public string? Failure { get; private set; }

    /// <summary>A new spec for the same process (the app's probe changed): counts start again, the verdict stays until the new one says otherwise.</summary>
    public void Respec(ProbeSpec spec, DateTime now)
    {
        if (spec == Spec) return;
        Spec = spec;
        (_passes, _failures) = (0, 0);
        if (NextDue > now + TimeSpan.FromSeconds(spec.IntervalSeconds)) NextDue = now + TimeSpan.FromSeconds(spec.IntervalSeconds);
    }

    /// <summary>Counts one result; returns whether the verdict changed.</summary>
    public bool Apply(ProbeResult result, DateTime now)
    {
        NextDue = now + TimeSpan.FromSeconds(Spec.IntervalSeconds);
        var before = Passing;
        if (result.Passed)
        {
            (_passes, _failures, Failure) = (_passes + 1, 0, null);
            if (_passes >= Spec.SuccessThreshold) Passing = true;
        }
        else
        {
            (_passes, _failures) = (0, _failures + 1);
            Failure = $"{Name}: {result.Detail} ({Math.Min(_failures, Spec.FailureThreshold)} of {Spec.FailureThreshold})";
            if (_failures >= Spec.FailureThreshold) Passing = false;
        }
        return Passing != before;
    }
}
