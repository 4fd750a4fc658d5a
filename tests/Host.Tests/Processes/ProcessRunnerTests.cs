using System.Diagnostics;
using Platform.Host.Processes;

namespace Platform.Host.Tests.Processes;

public sealed class ProcessRunnerTests
{
    private static bool Alive(int pid)
    {
        try { return !Process.GetProcessById(pid).HasExited && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal); }
        catch (Exception e) when (e is ArgumentException or IOException) { return false; }
    }

    /// <summary>A shell that starts a grandchild (sleep) and prints its pid, then waits: the tree the runner must kill.</summary>
    private static ProcessSpec Tree(List<int> pids) => new("/bin/sh", ["-c", "sleep 300 & echo $!; wait"])
    {
        OnLine = (line, _) => { if (int.TryParse(line, out var pid)) lock (pids) pids.Add(pid); },
    };

    private static async Task<int> GrandchildAsync(List<int> pids)
    {
        for (var i = 0; i < 500; i++)
        {
            lock (pids) if (pids.Count > 0) return pids[0];
            await Task.Delay(10);
        }
        throw new TimeoutException("the shell never printed its child's pid");
    }

    [Fact]
    public async Task A_command_returns_its_exit_code_and_output()
    {
        var r = await ProcessRunner.RunAsync("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], CancellationToken.None);
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("out\n", r.Stdout);
        Assert.Equal("err\n", r.Stderr);
        var e = Assert.Throws<ProcessFailedException>(() => r.EnsureSuccess("the step"));
        Assert.Contains("the step failed (exit 3): err", e.Message);
    }

    [Fact]
    public async Task Stdin_reaches_the_program()
    {
        var r = await ProcessRunner.RunAsync("/bin/cat", [], CancellationToken.None, stdin: "hello\nworld");
        Assert.Equal("hello\nworld", r.Stdout);
    }

    [Fact]
    public async Task Cancelling_kills_the_whole_process_tree()
    {
        var pids = new List<int>();
        using var cts = new CancellationTokenSource();
        var run = ProcessRunner.RunAsync(Tree(pids) with { Timeout = Timeout.InfiniteTimeSpan }, cts.Token);
        var grandchild = await GrandchildAsync(pids);
        Assert.True(Alive(grandchild), "positive control: the grandchild runs before the cancel");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        for (var i = 0; i < 200 && Alive(grandchild); i++) await Task.Delay(10);
        Assert.False(Alive(grandchild), "the grandchild was killed with its parent");
    }

    [Fact]
    public async Task A_time_limit_kills_the_tree_and_says_so()
    {
        var pids = new List<int>();
        var run = ProcessRunner.RunAsync(Tree(pids) with { Timeout = TimeSpan.FromMilliseconds(500) }, CancellationToken.None);
        var grandchild = await GrandchildAsync(pids);
        var e = await Assert.ThrowsAsync<TimeoutException>(() => run);
        Assert.Contains("/bin/sh", e.Message);
        for (var i = 0; i < 200 && Alive(grandchild); i++) await Task.Delay(10);
        Assert.False(Alive(grandchild));
    }

    [Fact]
    public async Task Output_without_end_is_captured_only_up_to_the_bound()
    {
        // 8 MiB of output without a single newline, against a 64 KiB bound.
        var spec = new ProcessSpec("/bin/sh", ["-c", "head -c 8388608 /dev/zero | tr '\\0' x; echo; head -c 1000000 /dev/zero | tr '\\0' y >&2; echo LAST >&2"])
        {
            MaxCapture = 64 * 1024, Timeout = TimeSpan.FromMinutes(1),
        };
        var r = await ProcessRunner.RunAsync(spec, CancellationToken.None);
        Assert.Equal(0, r.ExitCode);
        Assert.True(r.Truncated);
        Assert.Equal(64 * 1024, r.Stdout.Length);
        Assert.StartsWith("xxxx", r.Stdout);
        Assert.True(r.Stderr.Length <= 64 * 1024);
        Assert.EndsWith("LAST\n", r.Stderr);   // the end of stderr is where the error is
    }

    [Fact]
    public async Task Lines_stream_as_they_come_and_long_lines_arrive_in_pieces()
    {
        var lines = new List<(string, bool)>();
        var spec = new ProcessSpec("/bin/sh", ["-c", "echo one; echo two >&2; head -c 40000 /dev/zero | tr '\\0' z; echo; echo secret-plat_x"])
        {
            MaxLine = 16 * 1024, OnLine = (l, e) => { lock (lines) lines.Add((l, e)); }, Keep = l => !l.Contains("plat_", StringComparison.Ordinal),
        };
        var r = await ProcessRunner.RunAsync(spec, CancellationToken.None);
        Assert.Contains(("one", false), lines);
        Assert.Contains(("two", true), lines);
        Assert.Equal([16384, 16384, 7232], lines.Where(l => l.Item1.StartsWith('z')).Select(l => l.Item1.Length));
        Assert.DoesNotContain(lines, l => l.Item1.Contains("secret", StringComparison.Ordinal));
        Assert.DoesNotContain("secret", r.Stdout);
        Assert.Contains("one\n", r.Stdout);
    }

    [Fact]
    public async Task A_started_process_streams_and_dispose_kills_it()
    {
        var p = ProcessRunner.Start(new ProcessSpec("/bin/cat", []) { Timeout = Timeout.InfiniteTimeSpan });
        await p.Stdin.WriteAsync("ping\n"u8.ToArray());
        await p.Stdin.FlushAsync();
        var buffer = new byte[5];
        var read = 0;
        while (read < 5) read += await p.Stdout.ReadAsync(buffer.AsMemory(read));
        Assert.Equal("ping\n", System.Text.Encoding.ASCII.GetString(buffer));
        var pid = p.Id;
        Assert.True(Alive(pid));
        await p.DisposeAsync();
        Assert.False(Alive(pid));
    }

    [Fact]
    public async Task A_program_that_never_reads_its_stdin_is_still_killed_at_its_time_limit()
    {
        var spec = new ProcessSpec("/bin/sleep", ["300"]) { Stdin = new string('x', 4 << 20), Timeout = TimeSpan.FromSeconds(1) };
        var run = ProcessRunner.RunAsync(spec, CancellationToken.None);
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))));
        await Assert.ThrowsAsync<TimeoutException>(() => run);
    }

    [Fact]
    public async Task A_callback_that_throws_does_not_stop_the_draining_so_the_program_ends()
    {
        var calls = 0;
        var spec = new ProcessSpec("/bin/sh", ["-c", "head -c 4000000 /dev/zero | tr '\\0' '\\n'; echo end"])
        {
            OnLine = (_, _) => { calls++; throw new IOException("the log's disk is full"); }, Timeout = TimeSpan.FromMinutes(1),
        };
        var r = await ProcessRunner.RunAsync(spec, CancellationToken.None);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Nul_separated_names_that_are_not_utf8_arrive_byte_for_byte()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        try
        {
            var name = System.Text.Encoding.Latin1.GetString([0x66, 0xff, 0x0a, 0x67]);   // 'f', an invalid UTF-8 byte, a newline, 'g'
            await ProcessRunner.CheckedAsync("/bin/sh", ["-c", "touch \"$1/$(printf 'f\\377\\ng')\"", "sh", dir], CancellationToken.None);
            var names = new List<string>();
            await ProcessRunner.RunAsync(new ProcessSpec("find", [dir, "-mindepth", "1", "-printf", "%f\\0"])
            {
                Delimiter = '\0', OutputEncoding = System.Text.Encoding.Latin1, OnLine = (l, _) => names.Add(l),
            }, CancellationToken.None);
            Assert.Equal([name], names);
        }
        finally
        {
            await ProcessRunner.RunAsync("rm", ["-rf", "--", dir], CancellationToken.None);   // .NET cannot name that file to delete it
        }
    }

    [Fact]
    public async Task A_started_process_reads_to_the_end_of_its_streamed_input_and_exits()
    {
        await using var p = ProcessRunner.Start(new ProcessSpec("/bin/cat", []) { Timeout = Timeout.InfiniteTimeSpan });
        await p.Stdin.WriteAsync("all of it\n"u8.ToArray());
        p.CloseStdin();
        using var reader = new StreamReader(p.Stdout);
        Assert.Equal("all of it\n", await reader.ReadToEndAsync());
        Assert.Equal(0, (await p.WaitAsync(CancellationToken.None)).ExitCode);
    }
}
