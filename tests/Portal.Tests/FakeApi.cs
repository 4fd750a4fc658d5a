using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Platform.Contracts;
using Platform.Portal.Api;

namespace Platform.Portal.Tests;

/// <summary>
/// The Api as page tests need it: each call answers from the data set here, throws the problem set
/// here, or waits on <see cref="Gate"/> (to see a page while it loads). Records what pages sent.
/// </summary>
public sealed class FakeApi : IPlatformApi
{
    public TaskCompletionSource? Gate { get; set; }
    public ApiProblem? Problem { get; set; }
    public List<TeamSummary> Teams { get; } = [];
    public Dictionary<string, List<ProjectSummary>> Projects { get; } = [];
    public Dictionary<string, List<AppResponse>> Apps { get; } = [];
    public List<InstanceResponse> Instances { get; } = [];
    public List<TokenResponse> Tokens { get; } = [];
    public List<NodeResponse> Nodes { get; } = [];
    public List<object> Sent { get; } = [];
    public Func<object, ApiProblem?>? Refuse { get; set; }

    public static ApiProblem Forbidden() => new(HttpStatusCode.Forbidden, "Forbidden.", "Only platform admins list nodes.", new Dictionary<string, string[]>());
    public static ApiProblem NotFound() => new(HttpStatusCode.NotFound, "Not found.", "App 'gone' was not found.", new Dictionary<string, string[]>());
    public static ApiProblem Broken() => new(HttpStatusCode.InternalServerError, "Internal Server Error", null, new Dictionary<string, string[]>());
    public static ApiProblem Invalid(string field, string message) =>
        new((HttpStatusCode)422, "The request is not valid.", $"{field}: {message}", new Dictionary<string, string[]> { [field] = [message] });

    public static QuotaItem Q(long used, long? limit) => new(limit, used);
    public static ProjectResponse Project(string team, string name) =>
        new(name, team, DateTime.UtcNow, "developer", new ProjectQuotaResponse(Q(256, 1024), Q(250, 1000), Q(1, 4), Q(1, 5)));
    public static AppResponse App(string team, string project, string name, int running, int desired, string? message = null) =>
        new(name, project, team, "library/hello:latest", desired, 64, 100, 8080, new Dictionary<string, string>(), "/",
            $"http://{name}-{project}-{team}.apps.localhost:8080", null, DateTime.UtcNow, DateTime.UtcNow, new AppStatus(running, desired, message));

    private async Task<T> Answer<T>(Func<T> value)
    {
        if (Gate is not null) await Gate.Task;
        if (Problem is not null) throw Problem;
        return value();
    }

    private Task<T> Send<T>(object body, Func<T> value)
    {
        Sent.Add(body);
        return Refuse?.Invoke(body) is { } p ? Task.FromException<T>(p) : Answer(value);
    }

    public Task<MeResponse> MeAsync(CancellationToken ct = default) => Answer(() => new MeResponse("u", "dev@example.com", false, []));
    public Task<IReadOnlyList<TeamSummary>> TeamsAsync(CancellationToken ct = default) => Answer<IReadOnlyList<TeamSummary>>(() => Teams);
    public Task<TeamResponse> TeamAsync(string team, CancellationToken ct = default) => Answer(() => Team(team));
    public Task<IReadOnlyList<ProjectSummary>> ProjectsAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<ProjectSummary>>(() => Projects.GetValueOrDefault(team) ?? []);
    public string? ProjectRole { get; set; } = "developer";
    public Task<ProjectResponse> ProjectAsync(string team, string project, CancellationToken ct = default) =>
        Answer(() => Project(team, project) with { MyRole = ProjectRole });
    public Task<IReadOnlyList<AppResponse>> AppsAsync(string team, string project, CancellationToken ct = default) =>
        Answer<IReadOnlyList<AppResponse>>(() => Apps.GetValueOrDefault($"{team}/{project}") ?? []);
    public Task<AppResponse> AppAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer(() => Apps.GetValueOrDefault($"{team}/{project}")?.FirstOrDefault(a => a.Name == app) ?? throw NotFound());
    public Task<AppResponse> CreateAppAsync(string team, string project, CreateAppRequest request, CancellationToken ct = default) =>
        Send(request, () => request.SourceUrl is null
            ? App(team, project, request.Name!, 0, request.Instances ?? 1)
            : App(team, project, request.Name!, 0, request.Instances ?? 1) with
            {
                Image = null,
                SourceUrl = request.SourceUrl,
                Branch = request.Branch ?? "main",
                DockerfilePath = request.DockerfilePath ?? "Dockerfile",
                WebhookUrl = $"http://api.example:5080/hooks/{team}/{project}/{request.Name}",
                WebhookSecret = request.WebhookSecret is null ? "whsec_ONCE" : null,
            });
    public Task<AppResponse> UpdateAppAsync(string team, string project, string app, UpdateAppRequest request, CancellationToken ct = default) =>
        Send(request, () => App(team, project, app, 0, request.Instances ?? 1));
    public Task DeleteAppAsync(string team, string project, string app, CancellationToken ct = default) => Send(app, () => 0);
    public Task<IReadOnlyList<InstanceResponse>> InstancesAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer<IReadOnlyList<InstanceResponse>>(() => Instances);
    public Task<string> LogsAsync(string team, string project, string app, int tail, CancellationToken ct = default) =>
        Answer(() => "[0123abcd] serving on port 8080\n");
    public Task<IReadOnlyList<ImageRepositoryResponse>> ImagesAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<ImageRepositoryResponse>>(() => [new ImageRepositoryResponse($"{team}/web/shop", "web", [new ImageTagResponse("v1", "sha256:00", 1, DateTime.UtcNow)])]);
    public Task<IReadOnlyList<TokenResponse>> TokensAsync(CancellationToken ct = default) => Answer<IReadOnlyList<TokenResponse>>(() => Tokens);
    public Task<CreatedTokenResponse> CreateTokenAsync(CreateTokenRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            Tokens.Add(new TokenResponse("t1", request.Name!, "plat_abc", DateTime.UtcNow, DateTime.UtcNow.AddDays(30), null, null));
            return new CreatedTokenResponse("t1", request.Name!, "plat_abcdefSECRET", DateTime.UtcNow.AddDays(30));
        });
    public Task RevokeTokenAsync(string id, CancellationToken ct = default) => Send(id, () => 0);
    public Task<IReadOnlyList<NodeResponse>> NodesAsync(CancellationToken ct = default) => Answer<IReadOnlyList<NodeResponse>>(() => Nodes);
    public Task<JoinTokenResponse> CreateJoinTokenAsync(CancellationToken ct = default) => Send("join", () => new JoinTokenResponse("platjoin_x", DateTime.UtcNow.AddDays(1)));
    public List<UserResponse> Users { get; } = [];
    public Task<IReadOnlyList<UserResponse>> UsersAsync(CancellationToken ct = default) => Answer<IReadOnlyList<UserResponse>>(() => Users);
    public Task<UserResponse> CreateUserAsync(CreateUserRequest request, CancellationToken ct = default) =>
        Send(request, () => { var u = new UserResponse("u" + Users.Count, request.Email!, request.PlatformAdmin, DateTime.UtcNow, false); Users.Add(u); return u; });
    public Task<TeamResponse> CreateTeamAsync(CreateTeamRequest request, CancellationToken ct = default) => Send(request, () => Team(request.Name!));
    public Task<TeamQuotaResponse> SetTeamQuotaAsync(string team, TeamQuotaRequest request, CancellationToken ct = default) => Send(request, () => Team(team).Quota);
    public List<MemberResponse> Members { get; } = [];
    public Task<IReadOnlyList<MemberResponse>> MembersAsync(string team, CancellationToken ct = default) => Answer<IReadOnlyList<MemberResponse>>(() => Members);
    public Task<MemberResponse> SetMemberAsync(string team, string email, string role, CancellationToken ct = default) =>
        Send((email, role), () => { var m = new MemberResponse(email, role, null); Members.Add(m); return m; });
    public Task RemoveMemberAsync(string team, string email, CancellationToken ct = default) => Send(email, () => 0);
    public Task<ProjectResponse> CreateProjectAsync(string team, CreateProjectRequest request, CancellationToken ct = default) => Send(request, () => Project(team, request.Name!));
    public Task<MemberResponse> SetProjectMemberAsync(string team, string project, string email, string role, CancellationToken ct = default) =>
        Send((email, role), () => { var m = new MemberResponse(email, role, project); Members.Add(m); return m; });
    public Task RemoveProjectMemberAsync(string team, string project, string email, CancellationToken ct = default) => Send(email, () => 0);
    public List<BuildResponse> Builds { get; } = [];
    public Task<IReadOnlyList<BuildResponse>> BuildsAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer<IReadOnlyList<BuildResponse>>(() => Builds);
    public Task<string> BuildLogAsync(string team, string project, string app, int number, CancellationToken ct = default) =>
        Answer(() => $"STEP 1/2: FROM busybox\nbuild {number} log\n");
    /// <summary>The live build log: lines the test writes are streamed; completing the writer ends the build's log.</summary>
    public Channel<string> BuildLogLines { get; set; } = Channel.CreateUnbounded<string>();
    /// <summary>How many followers of the live log stopped because the page cancelled them.</summary>
    public int FollowsCancelled { get; private set; }
    public async IAsyncEnumerable<string> FollowBuildLogAsync(string team, string project, string app, int number, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var cancelled = ct.Register(() => FollowsCancelled++);
        if (Problem is not null) throw Problem;
        await foreach (var line in BuildLogLines.Reader.ReadAllAsync(ct))
            yield return line;
    }
    public Task<BuildResponse> StartBuildAsync(string team, string project, string app, string? commit = null, CancellationToken ct = default) =>
        Send(new CreateBuildRequest(commit), () =>
        {
            var b = new BuildResponse(Builds.Count == 0 ? 1 : Builds.Max(x => x.Number) + 1, commit ?? new string('a', 40), "Queued", null, null, DateTime.UtcNow, null, null,
                "api", "dev@example.com");
            Builds.Insert(0, b);
            return b;
        });
    public Task<BuildResponse> CancelBuildAsync(string team, string project, string app, int number, CancellationToken ct = default) =>
        Send(("cancel", number), () => Builds.Single(b => b.Number == number) with { CancelRequested = true });
    public List<ReleaseResponse> Releases { get; } = [];
    public Task<IReadOnlyList<ReleaseResponse>> ListReleasesAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer<IReadOnlyList<ReleaseResponse>>(() => Releases);
    public Task<ReleaseResponse> RollbackAsync(string team, string project, string app, int version, CancellationToken ct = default) =>
        Send(("rollback", version), () =>
        {
            var target = Releases.Single(r => r.Version == version);
            var release = target with { Version = Releases.Max(r => r.Version) + 1, Description = $"Rollback to v{version}", CreatedAt = DateTime.UtcNow, Current = true };
            for (var i = 0; i < Releases.Count; i++) Releases[i] = Releases[i] with { Current = false };
            Releases.Insert(0, release);
            return release;
        });
    public Task<IReadOnlyList<AuditEventResponse>> AuditAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<AuditEventResponse>>(() => [new AuditEventResponse(1, DateTime.UtcNow, "owner@example.com", "apps.create", team, "apps/shop", "ok", 201)]);
    public string? MyRole { get; set; } = "owner";
    public TeamResponse Team(string name) => new(name, DateTime.UtcNow, MyRole,
        new TeamQuotaResponse(Q(512, 4096), Q(500, 4000), Q(2, 10), Q(1, 10), Q(1, 5), Q(0, 10), Q(0, 2), 0));
}
