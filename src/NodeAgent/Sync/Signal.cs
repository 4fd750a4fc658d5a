using System.Threading.Channels;

namespace Platform.NodeAgent.Sync;

/// <summary>A wake-up that many may raise and one loop waits for, with a time limit on the injected clock; raises while nobody waits coalesce into one.</summary>
public sealed class Signal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Set() => _channel.Writer.TryWrite(true);

    /// <summary>Returns when raised or after <paramref name="timeout"/>; throws only when <paramref name="ct"/> fires.</summary>
    public async Task WaitAsync(TimeSpan timeout, TimeProvider clock, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var raised = _channel.Reader.WaitToReadAsync(stop.Token).AsTask();
        var delay = Task.Delay(timeout, clock, stop.Token);
        await Task.WhenAny(raised, delay);
        stop.Cancel();
        _channel.Reader.TryRead(out _);
        ct.ThrowIfCancellationRequested();
    }
}
