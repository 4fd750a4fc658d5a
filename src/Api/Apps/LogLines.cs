using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Platform.Api.Apps;

/// <summary>
/// The lines a log stream merges from its instances, on their way to one client, bounded by
/// <c>capacity</c> lines (of at most <see cref="AppLogs.MaxLine"/> characters each), whatever the client does.
/// A client that keeps reading gets every line: the instances' streams wait for it (a long tail arrives
/// whole). A client that has taken nothing for <c>patience</c> no longer holds them up: each new line
/// then replaces the oldest waiting one, and when the client reads again it first gets a note saying how
/// many lines it missed.
/// </summary>
public sealed class LogLines(int capacity, TimeSpan patience, TimeProvider clock)
{
    private readonly Channel<string> _channel = Channel.CreateBounded<string>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.Wait });
    private long _dropped;
    private long _lastRead = clock.GetTimestamp();

    /// <summary>Queues a line: at once when there is room, else after the client takes one or once it has been idle for the patience.</summary>
    public async ValueTask WriteAsync(string line, CancellationToken ct)
    {
        while (!_channel.Writer.TryWrite(line))
        {
            var idle = clock.GetElapsedTime(Interlocked.Read(ref _lastRead));
            if (idle >= patience)
            {
                if (_channel.Reader.TryRead(out _)) Interlocked.Increment(ref _dropped);   // the oldest makes room
                continue;
            }
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(patience - idle);
            try { if (!await _channel.Writer.WaitToWriteAsync(wait.Token)) return; }   // completed: nobody reads any more
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
        }
    }

    /// <summary>No more lines will come: the reader ends after the queued ones.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Whether a line is waiting (the writer flushes when none is).</summary>
    public bool HasMore => _channel.Reader.TryPeek(out _);

    public static string DroppedNote(long count) => $"({count} lines dropped: the reader was slower than the instances wrote)";

    public async IAsyncEnumerable<string> ReadAllAsync([EnumeratorCancellation] CancellationToken ct)
    {
        while (await _channel.Reader.WaitToReadAsync(ct))
        {
            while (_channel.Reader.TryRead(out var line))
            {
                Interlocked.Exchange(ref _lastRead, clock.GetTimestamp());
                if (Interlocked.Exchange(ref _dropped, 0) is var dropped and > 0) yield return DroppedNote(dropped);
                yield return line;
                Interlocked.Exchange(ref _lastRead, clock.GetTimestamp());   // the client took it
            }
        }
        if (Interlocked.Exchange(ref _dropped, 0) is var last and > 0) yield return DroppedNote(last);
    }
}
