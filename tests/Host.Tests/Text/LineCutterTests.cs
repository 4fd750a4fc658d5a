using Platform.Host.Text;

namespace Platform.Host.Tests.Text;

public sealed class LineCutterTests
{
    private static List<string> Feed(int max, params string[] chunks)
    {
        var cutter = new LineCutter(max);
        var lines = new List<string>();
        foreach (var chunk in chunks) cutter.Feed(chunk, lines.Add);
        if (cutter.Flush() is { } last) lines.Add(last);
        return lines;
    }

    [Fact]
    public void A_line_of_exactly_the_cap_is_kept_whole_and_one_character_more_is_cut_with_the_marker()
    {
        var exact = new string('a', 100);
        Assert.Equal([exact, "next"], Feed(100, exact + "\r\n", "next\n"));

        var lines = Feed(100, exact + "b", "ccc\nnext\n");
        Assert.Equal(2, lines.Count);
        Assert.Equal(100, lines[0].Length);
        Assert.Equal(new string('a', 100 - " [line cut at 100 characters]".Length) + " [line cut at 100 characters]", lines[0]);
        Assert.Equal("next", lines[1]);
    }

    [Fact]
    public void Lines_split_across_feeds_are_joined_and_the_rest_of_a_cut_line_is_dropped_across_feeds()
    {
        Assert.Equal(["hello world", "x"], Feed(64, "hel", "lo wor", "ld\nx"));
        var lines = Feed(64, new string('z', 50), new string('z', 50), new string('z', 5000), "\nafter");
        Assert.Equal(2, lines.Count);
        Assert.Equal(64, lines[0].Length);
        Assert.Equal("after", lines[1]);
    }
}
