using System.Net;
using System.Text;
using Platform.Portal.Api;

namespace Platform.Portal.Tests;

/// <summary>The typed client against canned answers: what it sends, and how it reads the build log's event stream.</summary>
public sealed class PlatformApiTests
{
    private sealed class Canned(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
    {
        public List<(HttpRequestMessage Request, string? Body)> Seen { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Seen.Add((request, request.Content is null ? null : await request.Content.ReadAsStringAsync(ct)));
            return answer(request);
        }
    }

    private static (PlatformApi Api, Canned Handler) Client(Func<HttpRequestMessage, HttpResponseMessage> answer)
    {
        var handler = new Canned(answer);
        return (new PlatformApi(new HttpClient(handler) { BaseAddress = new Uri("http://api.example/") }), handler);
    }

    private static HttpResponseMessage Text(string text, string type, HttpStatusCode status = HttpStatusCode.OK) =>
        new(status) { Content = new StringContent(text, Encoding.UTF8, type) };

    [Fact]
    public async Task The_build_log_stream_yields_each_data_line_skips_comments_and_stops_at_the_end_event()
    {
        const string stream =
            "id: 10\ndata: STEP 1/2: FROM busybox\n\n" +
            ": keep-alive\n\n" +
            "id: 11\ndata: \n\n" +                        // an empty line of the log
            "id: 30\r\ndata: two\r\ndata: parts\r\n\r\n" +  // CRLF, and data over two fields
            "event: end\ndata: Succeeded\n\n" +
            "data: never read\n\n";
        var (api, handler) = Client(_ => Text(stream, "text/event-stream"));

        var lines = new List<string>();
        await foreach (var line in api.FollowBuildLogAsync("acme", "web", "my app", 7))
            lines.Add(line);

        Assert.Equal(["STEP 1/2: FROM busybox", "", "two\nparts"], lines);
        var request = handler.Seen.Single().Request;
        Assert.Equal("http://api.example/api/v1/teams/acme/projects/web/apps/my%20app/builds/7/log", request.RequestUri!.AbsoluteUri);
        Assert.Contains(request.Headers.Accept, a => a.MediaType == "text/event-stream");
    }

    [Fact]
    public async Task The_build_log_stream_turns_a_refusal_into_a_problem()
    {
        var (api, _) = Client(_ => Text("""{"title":"Not found.","detail":"Build #9 was not found."}""", "application/problem+json", HttpStatusCode.NotFound));
        var problem = await Assert.ThrowsAsync<ApiProblem>(async () =>
        {
            await foreach (var _ in api.FollowBuildLogAsync("acme", "web", "site", 9)) { }
        });
        Assert.True(problem.IsNotFound);
        Assert.Equal("Build #9 was not found.", problem.Detail);
    }

    [Fact]
    public async Task Rebuild_cancel_releases_and_rollback_call_their_endpoints()
    {
        const string build = """{"number":3,"commit":"abc","state":"Queued","createdAt":"2025-01-01T00:00:00Z","trigger":"api"}""";
        const string release = """{"version":4,"image":"library/hello:1","description":"Rollback to v1","createdAt":"2025-01-01T00:00:00Z","current":true}""";
        var (api, handler) = Client(r => r.RequestUri!.AbsolutePath switch
        {
            var p when p.EndsWith("/rollback", StringComparison.Ordinal) => Text(release, "application/json", HttpStatusCode.Created),
            var p when p.EndsWith("/releases", StringComparison.Ordinal) => Text($$"""{"items":[{{release}}]}""", "application/json"),
            var p when p.EndsWith("/cancel", StringComparison.Ordinal) => Text(build, "application/json", HttpStatusCode.Accepted),
            _ => Text(build, "application/json", HttpStatusCode.Created),
        });

        Assert.Equal(3, (await api.StartBuildAsync("acme", "web", "site")).Number);
        Assert.Equal("Queued", (await api.CancelBuildAsync("acme", "web", "site", 3)).State);
        Assert.True(Assert.Single(await api.ListReleasesAsync("acme", "web", "site")).Current);
        Assert.Equal(4, (await api.RollbackAsync("acme", "web", "site", 1)).Version);

        Assert.Equal(
            [
                ("POST", "/api/v1/teams/acme/projects/web/apps/site/builds", """{"commit":null}"""),
                ("POST", "/api/v1/teams/acme/projects/web/apps/site/builds/3/cancel", null),
                ("GET", "/api/v1/teams/acme/projects/web/apps/site/releases", null),
                ("POST", "/api/v1/teams/acme/projects/web/apps/site/releases/1/rollback", null),
            ],
            handler.Seen.Select(s => (s.Request.Method.Method, s.Request.RequestUri!.AbsolutePath, s.Body)));
    }
}
