using System.Net;
using System.Net.Sockets;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// <c>ADD http://127.0.0.1:…/</c>: buildah fetches ADD's URLs itself, from the Api's machine and network, so a
/// Dockerfile could read the machine's own services (the RUN steps cannot: they are in the build network).
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildFetchAttackTests
{
    [Fact]
    public async Task An_ADD_of_a_URL_on_the_Apis_loopback_is_refused_naming_its_line_and_nothing_is_fetched()
    {
        // A service of the machine's, on loopback: it counts the connections it gets.
        using var service = new TcpListener(IPAddress.Loopback, 0);
        service.Start();
        var port = ((IPEndPoint)service.LocalEndpoint).Port;
        var connections = 0;
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using var client = await service.AcceptTcpClientAsync();
                    Interlocked.Increment(ref connections);
                    await client.GetStream().WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecret"u8.ToArray());
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException) { }
        });
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var source = await BuildKit.GitAppAsync(cluster, "fetch");
        await source.PushAsync(new Dictionary<string, string>
        {
            ["local.txt"] = "a file of the repository\n",
            ["Dockerfile"] = $"FROM busybox\nADD local.txt /local.txt\nADD http://127.0.0.1:{port}/secret /secret\nRUN cat /secret\n",
        }, "fetch");
        var build = await BuildKit.WaitForBuildAsync(cluster, "fetch", 1, "Failed");
        Assert.StartsWith("Dockerfile line 3: ADD may not fetch URLs", build.GetProperty("reason").GetString());
        Assert.Equal(0, connections);

        // The positive controls: the service answers whoever asks from this machine, and ADD of a repository file builds.
        using (var http = new HttpClient())
            Assert.Equal("secret", await http.GetStringAsync($"http://127.0.0.1:{port}/secret"));
        Assert.Equal(1, connections);
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nADD local.txt /local.txt\nRUN cat /local.txt\n" }, "local");
        await BuildKit.WaitForBuildAsync(cluster, "fetch", 2, "Succeeded");
        Assert.Contains("a file of the repository", await cluster.Admin.GetStringAsync($"{cluster.Apps}/fetch/builds/2/log"));
        service.Stop();
        await accepting;
    }
}
