using System.Net.Http.Headers;
using Platform.NodeAgent.Runtime;
using Platform.NodeAgent.Tests.Instances;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>Tests that measure this process's allocations run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone";
}

/// <summary>
/// A tenant's container prints a line with no end: 100 MiB without a newline (and then some more while a
/// follower watches). The agent's control server, which runs as root beside every instance, must serve
/// such a log with bounded memory: the line cut at <see cref="ControlServer.MaxLine"/> with a marker, the
/// lines around it intact, and the agent still serving afterwards.
/// </summary>
[Trait("Suite", "Hostile")]
[Collection(AloneCollection.Name)]
public sealed class LogFloodAttackTests : IAsyncLifetime
{
    private const long Bound = 64L * 1024 * 1024;   // what one request may allocate; reading the line whole costs over 400 MiB
    private Busybox _lab = null!;
    private readonly FakeRuntime _runtime = new(TimeProvider.System);
    private readonly ControlServer _control = new(TimeProvider.System);
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _lab = await Busybox.CreateAsync();
        await _control.StartAsync("127.0.0.1", 0, _runtime, CancellationToken.None);
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_control.Port}/"), Timeout = TimeSpan.FromSeconds(60) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _control.Key);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _control.DisposeAsync();
        await _lab.DisposeAsync();
    }

    private async Task<(Guid Id, string Bundle)> StartAsync(string name, string script)
    {
        var id = Guid.NewGuid();
        var bundle = await _lab.StartAsync($"{name}-{id.ToString("N")[..6]}", _lab.Spec($"{name}-{id.ToString("N")[..6]}", ["sh", "-c", script], Seccomp.Embedded()));
        _runtime.LogFolders[id] = bundle;
        return (id, bundle);
    }

    private static long Allocated()
    {
        GC.Collect();
        return GC.GetTotalAllocatedBytes(precise: true);
    }

    private static void AssertCut(string line, char filler)
    {
        Assert.Equal(ControlServer.MaxLine, line.Length);
        Assert.EndsWith($" [line cut at {ControlServer.MaxLine} characters]", line);
        Assert.True(line.TrimEnd().Split(' ')[0].All(c => c == filler));
    }

    [Fact]
    public async Task A_hundred_MiB_line_without_a_newline_is_served_cut_at_the_cap_with_bounded_memory()
    {
        var (id, bundle) = await StartAsync("flood", "echo before; head -c 104857600 /dev/zero | tr '\\0' x; printf '\\nafter\\n'");
        await Busybox.WaitExitAsync(bundle, 120);
        Assert.True(new FileInfo(Path.Combine(bundle, "output.log")).Length > 100L * 1024 * 1024);   // the attack happened

        var before = Allocated();
        var tail = await _http.GetStringAsync($"v1/instances/{id}/logs?tail=10");
        var allocated = Allocated() - before;

        var lines = tail.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal("before", lines[0]);
        AssertCut(lines[1], 'x');
        Assert.Equal("after", lines[2]);
        Assert.True(allocated < Bound, $"serving the tail allocated {allocated / (1024 * 1024)} MiB");

        // Still serving: an ordinary instance's log right after.
        var (quiet, quietBundle) = await StartAsync("quiet", "echo ordinary line");
        await Busybox.WaitExitAsync(quietBundle);
        Assert.Equal("ordinary line\n", await _http.GetStringAsync($"v1/instances/{quiet}/logs?tail=10"));
    }

    [Fact]
    public async Task A_follower_of_a_line_without_end_gets_it_cut_at_the_cap_and_then_the_next_lines()
    {
        // The tenant prints "ready", waits for the test to follow, then 32 MiB without a newline.
        var signal = "go-" + Guid.NewGuid().ToString("N")[..8];
        var (id, bundle) = await StartAsync("follow",
            $"echo ready; while [ ! -e /tmp/{signal} ]; do usleep 20000; done; head -c 33554432 /dev/zero | tr '\\0' y; printf '\\nend\\n'; sleep 30");
        var go = Path.Combine(_lab.Rootfs, "tmp", signal);
        var before = Allocated();
        using var response = await _http.GetAsync($"v1/instances/{id}/logs?tail=1&follow=true", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal("ready", await reader.ReadLineAsync());
        await File.WriteAllTextAsync(go, "");
        try
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var cut = await reader.ReadLineAsync(deadline.Token);
            Assert.NotNull(cut);
            AssertCut(cut, 'y');
            Assert.Equal("end", await reader.ReadLineAsync(deadline.Token));
            var allocated = Allocated() - before;
            Assert.True(allocated < Bound, $"following allocated {allocated / (1024 * 1024)} MiB");
        }
        finally
        {
            File.Delete(go);
            await _lab.Runc.StopAsync(Path.GetFileName(bundle), TimeSpan.Zero, CancellationToken.None);
        }
    }
}
