using Platform.Api.Apps;
using Platform.Host.Text;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A tenant opens a followed log stream of a chatty app and never reads it (or an agent, or a tenant's
/// output through it, sends a line without end). The Api must not hold what the client does not take:
/// the stream's queue stays at its bound, the instances' streams are not held up for ever, and the
/// client learns how many lines it missed.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class AppLogStreamAttackTests
{
    private const int Capacity = 16;
    private static readonly TimeSpan Patience = TimeSpan.FromMilliseconds(300);

    private static async Task WriteAsync(LogLines lines, int count)
    {
        for (var i = 0; i < count; i++) await lines.WriteAsync($"line {i}", CancellationToken.None);
        lines.Complete();
    }

    [Fact]
    public async Task A_reader_that_never_reads_holds_only_the_newest_lines_and_is_told_how_many_it_missed()
    {
        var lines = new LogLines(Capacity, Patience, TimeProvider.System);
        var writing = WriteAsync(lines, 20_000);

        // The instances' side finishes although nobody reads: nothing waits on the idle reader for ever.
        await writing.WaitAsync(TimeSpan.FromSeconds(30));

        var read = new List<string>();
        await foreach (var line in lines.ReadAllAsync(CancellationToken.None)) read.Add(line);
        Assert.True(read.Count <= Capacity + 1, $"{read.Count} lines were held for the reader");
        var note = Assert.Single(read, l => l.Contains("lines dropped"));
        Assert.Equal(LogLines.DroppedNote(20_000 - (read.Count - 1)), note);
        Assert.Equal("line 19999", read[^1]);   // the newest lines are the ones kept
    }

    [Fact]
    public async Task A_reader_that_keeps_reading_gets_every_line_of_a_long_tail_without_a_note()
    {
        // A reader that takes a line within the patience is never passed over (generous here: CI machines are busy).
        var lines = new LogLines(Capacity, TimeSpan.FromSeconds(30), TimeProvider.System);
        var writing = WriteAsync(lines, 20_000);
        var read = new List<string>();
        await foreach (var line in lines.ReadAllAsync(CancellationToken.None))
        {
            read.Add(line);
            if (read.Count % 1000 == 0) await Task.Yield();   // slower than the writer, but reading
        }
        await writing;
        Assert.Equal(20_000, read.Count);
        Assert.DoesNotContain(read, l => l.Contains("lines dropped"));
        Assert.Equal(Enumerable.Range(0, 20_000).Select(i => $"line {i}"), read);
    }

    [Fact]
    public async Task A_line_without_end_from_an_agent_is_cut_at_the_cap_and_the_next_line_still_arrives()
    {
        var flood = "before\n" + new string('x', 8 * 1024 * 1024) + "\nafter\n";
        var reader = new LineReader(new StringReader(flood), AppLogs.MaxLine);
        Assert.Equal("before", await reader.ReadLineAsync(CancellationToken.None));
        var cut = await reader.ReadLineAsync(CancellationToken.None);
        Assert.Equal(AppLogs.MaxLine, cut!.Length);
        Assert.EndsWith($"[line cut at {AppLogs.MaxLine} characters]", cut);
        Assert.Equal("after", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }
}
