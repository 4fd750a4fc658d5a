using System.Net;
using System.Net.Sockets;
using Platform.Contracts;
using Platform.Host.Processes;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Runtime;

/// <summary>The agent's probes against a real server on loopback (busybox httpd): what passes, what fails, and the words.</summary>
public sealed class ProberTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("prober-").FullName;
    private readonly int _port = FreePort();
    private RunningProcess? _httpd;

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(Path.Combine(_root, "live"), "ok\n");
        _httpd = ProcessRunner.Start(new ProcessSpec("busybox", ["httpd", "-f", "-p", $"127.0.0.1:{_port}", "-h", _root]) { Timeout = Timeout.InfiniteTimeSpan });
        for (var i = 0; i < 100 && !(await Probe(Tcp)).Passed; i++) await Task.Delay(50);
    }

    public async Task DisposeAsync()
    {
        if (_httpd is not null) await _httpd.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private static readonly ProbeSpec Tcp = new(ProbeTypes.Tcp, null, 200, 399, 2, 1, 1, 3, 0);
    private static ProbeSpec Http(string path, int min = 200, int max = 399) => new(ProbeTypes.Http, path, min, max, 2, 1, 1, 3, 0);

    private Task<ProbeResult> Probe(ProbeSpec spec, int? port = null) =>
        Prober.ProbeAsync(IPAddress.Loopback, port ?? _port, 8080, spec, new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);

    [Fact]
    public async Task Tcp_and_http_probes_pass_on_a_listening_server_and_fail_saying_why()
    {
        Assert.Equal(new ProbeResult(true, "connected on :8080"), await Probe(Tcp));
        Assert.Equal(new ProbeResult(true, "HTTP 200 on /live"), await Probe(Http("/live")));
        Assert.Equal(new ProbeResult(false, "HTTP 404 on /gone (expected 200–399)"), await Probe(Http("/gone")));
        Assert.True((await Probe(Http("/gone", 404, 404))).Passed, "a status range that asks for 404");
        var closed = FreePort();
        Assert.Equal(new ProbeResult(false, "connection refused on :8080"), await Probe(Tcp, closed));
        Assert.Equal(new ProbeResult(false, "connection refused on :8080"), await Probe(Http("/live"), closed));
    }
}
