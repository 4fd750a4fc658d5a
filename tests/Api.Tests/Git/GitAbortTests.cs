using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Git;

/// <summary>git http-backend lives only as long as its request: a push whose client goes away leaves no git behind.</summary>
public sealed class GitAbortTests
{
    [Fact]
    public async Task A_push_aborted_by_its_client_kills_git()
    {
        await using var host = new PlatformHost(Provider.Sqlite);
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "ga" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/ga/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/ga/projects/p/apps", new { name = "site", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
        var root = Path.Combine(host.DataDir, "git");

        using var abort = new CancellationTokenSource();
        using var http = host.Http();
        var request = new HttpRequestMessage(HttpMethod.Post, "/git/ga/p/site.git/git-receive-pack") { Content = new StallingContent() };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("x:" + PlatformHost.AdminToken)));
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-git-receive-pack-request");
        var push = http.SendAsync(request, abort.Token);

        await Cluster.WaitAsync(() => Task.FromResult(Backends(root).Count > 0), 20, "git http-backend running for the push");
        abort.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => push);
        await Cluster.WaitAsync(() => Task.FromResult(Backends(root).Count == 0), 20, () => $"git http-backend gone, not {string.Join(", ", Backends(root))}");
    }

    /// <summary>The git http-backend processes serving repositories under <paramref name="root"/>.</summary>
    private static List<int> Backends(string root)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
                if (!cmdline.Contains("http-backend", StringComparison.Ordinal)) continue;
                if (File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains("GIT_PROJECT_ROOT=" + root)) found.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return found;
    }

    /// <summary>A request body that starts and never ends (a client that stalls mid-push).</summary>
    private sealed class StallingContent : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken ct)
        {
            await stream.WriteAsync("0000"u8.ToArray().AsMemory(0, 2), ct);
            await stream.FlushAsync(ct);
            await Task.Delay(Timeout.Infinite, ct);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
