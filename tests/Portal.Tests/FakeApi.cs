using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Platform.Contracts;
using Platform.Portal.Api;

namespace Platform.Portal.Tests;

/// <summary>
/// The Api as page tests need it: each call answers from the data set here, throws the problem set
/// here, or waits on <see cref="Gate"/> (to see a page while it loads). Records what pages sent.
/// Teams, projects, apps and members behave as the Api's do (names, duplicates, unknowns, merge
/// of a PATCH, roles): <see cref="FakeApiContractTests"/> runs the same calls against this and the
/// real Api and keeps the two in step. A team or project exists when it is in <see cref="Teams"/>
/// or <see cref="Projects"/> or has apps in <see cref="Apps"/>; <see cref="Members"/> are the members
/// of the one team a test is about.
/// </summary>
public sealed class FakeApi : IPlatformApi
{
    public const string ApiUrl = "http://api.example:5080";

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
    /// <summary>Who calls: the creator of the teams created here, and a user members may name.</summary>
    public MeResponse Me { get; set; } = new("u", "owner@example.com", false, []);

    // Teams and projects created through the fake answer as created; seeded ones with the canned figures below.
    private readonly Dictionary<string, TeamResponse> _createdTeams = [];
    private readonly Dictionary<string, ProjectResponse> _createdProjects = [];

    public static ApiProblem Forbidden() => new(HttpStatusCode.Forbidden, "Forbidden.", "Only platform admins list nodes.", new Dictionary<string, string[]>());
    public static ApiProblem NotFound() => NotFound("App 'gone'");
    /// <summary>The Api's 404: "Not found.", "{what} was not found."</summary>
    public static ApiProblem NotFound(string what) => new(HttpStatusCode.NotFound, "Not found.", $"{what} was not found.", new Dictionary<string, string[]>());
    public static ApiProblem Broken() => new(HttpStatusCode.InternalServerError, "Internal Server Error", null, new Dictionary<string, string[]>());
    /// <summary>The Api's 422 naming one field.</summary>
    public static ApiProblem Invalid(string field, string message) =>
        new((HttpStatusCode)422, "The request is not valid.", $"{field}: {message}", new Dictionary<string, string[]> { [field] = [message] });
    /// <summary>The Api's 409 for a name (or email) that is taken.</summary>
    public static ApiProblem Conflict(string field, string message) =>
        new(HttpStatusCode.Conflict, "The name is taken.", message, new Dictionary<string, string[]> { [field] = [message] });

    public static QuotaItem Q(long used, long? limit) => new(limit, used);
    public static ProjectResponse Project(string team, string name) =>
        new(name, team, DateTime.UtcNow, "developer", new ProjectQuotaResponse(Q(256, 1024), Q(250, 1000), Q(1, 4), Q(1, 5)));
    public static AppResponse App(string team, string project, string name, int running, int desired, string? message = null) =>
        new(name, project, team, "library/hello:latest", desired, 64, 100, 8080, new Dictionary<string, string>(), null,
            Url(team, project, name), null, DateTime.UtcNow, DateTime.UtcNow, new AppStatus(running, desired, message)) { Readiness = DefaultReadiness };

    /// <summary>The Api's default readiness probe (TCP on the app's port; Apps/Probes).</summary>
    public static readonly ProbeSpec DefaultReadiness = new(ProbeTypes.Tcp, null, 200, 399, 2, 1, 1, 3, 0);

    private static string Url(string team, string project, string app) => $"http://{app}-{project}-{team}.apps.localhost:8080";

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

    private bool TeamExists(string team) =>
        Teams.Any(t => t.Name == team) || Projects.ContainsKey(team) || Apps.Keys.Any(k => k.StartsWith(team + "/", StringComparison.Ordinal));

    private bool ProjectExists(string team, string project) =>
        Projects.GetValueOrDefault(team)?.Any(p => p.Name == project) == true || Apps.ContainsKey($"{team}/{project}");

    private void RequireTeam(string team)
    {
        if (!TeamExists(team)) throw NotFound($"Team '{team}'");
    }

    private List<AppResponse> AppsOf(string team, string project)
    {
        RequireTeam(team);
        if (!ProjectExists(team, project)) throw NotFound($"Project '{project}'");
        return Apps.TryGetValue($"{team}/{project}", out var apps) ? apps : Apps[$"{team}/{project}"] = [];
    }

    private static AppResponse Find(List<AppResponse> apps, string app) => apps.FirstOrDefault(a => a.Name == app) ?? throw NotFound($"App '{app}'");

    private static void Check(string field, string? message)
    {
        if (message is not null) throw Invalid(field, message);
    }

    private bool UserExists(string email) =>
        string.Equals(Me.Email, email, StringComparison.OrdinalIgnoreCase) || Users.Any(u => string.Equals(u.Email, email, StringComparison.OrdinalIgnoreCase));

    public Task<MeResponse> MeAsync(CancellationToken ct = default) => Answer(() => Me);
    public Task<IReadOnlyList<TeamSummary>> TeamsAsync(CancellationToken ct = default) => Answer<IReadOnlyList<TeamSummary>>(() => Teams);
    public Task<TeamResponse> TeamAsync(string team, CancellationToken ct = default) =>
        Answer(() =>
        {
            RequireTeam(team);
            return _createdTeams.GetValueOrDefault(team) ?? Team(team);
        });
    public Task<IReadOnlyList<ProjectSummary>> ProjectsAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<ProjectSummary>>(() =>
        {
            RequireTeam(team);
            return Projects.GetValueOrDefault(team)?.OrderBy(p => p.Name, StringComparer.Ordinal).ToList() ?? [];
        });
    public string? ProjectRole { get; set; } = "developer";
    public Task<ProjectResponse> ProjectAsync(string team, string project, CancellationToken ct = default) =>
        Answer(() =>
        {
            AppsOf(team, project);
            return _createdProjects.GetValueOrDefault($"{team}/{project}") ?? Project(team, project) with { MyRole = ProjectRole };
        });
    public Task<IReadOnlyList<AppResponse>> AppsAsync(string team, string project, CancellationToken ct = default) =>
        Answer<IReadOnlyList<AppResponse>>(() => AppsOf(team, project).OrderBy(a => a.Name, StringComparer.Ordinal).ToList());
    public Task<AppResponse> AppAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer(() => Find(AppsOf(team, project), app));

    /// <summary>As the Api creates an app: its checks in its order, its defaults (256 MiB, 250 m, port 8080, one instance).</summary>
    public Task<AppResponse> CreateAppAsync(string team, string project, CreateAppRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            var apps = AppsOf(team, project);
            Check("name", Names.Validate(request.Name));
            if (request.Image is { } image && image.Split('/')[0] is var owner && owner != "library" && owner != team)
                throw Invalid("image", $"'{image.Split(':', '@')[0]}' belongs to another team: apps run images of their own team or of library/.");
            if (request.Image is not null && (request.SourceUrl ?? request.Branch ?? request.DockerfilePath) is not null)
                throw Invalid("image", "an app runs an image or is built from source (sourceUrl, branch, dockerfilePath), not both.");
            if (apps.Any(a => a.Name == request.Name))
                throw Conflict("name", $"An app named '{request.Name}' exists in project '{project}'.");
            var name = request.Name!;
            var fromSource = request.Image is null;
            var instances = request.Instances ?? 1;
            var app = new AppResponse(name, project, team, request.Image, instances, request.MemoryMiB ?? 256, request.CpuMillicores ?? 250,
                request.Port ?? 8080, (request.Env ?? []).Where(e => e.Value is not null).ToDictionary(e => e.Key, e => e.Value!),
                request.HealthCheckPath, Url(team, project, name),
                fromSource && request.SourceUrl is null ? $"{ApiUrl}/git/{team}/{project}/{name}.git" : null,
                DateTime.UtcNow, DateTime.UtcNow, new AppStatus(0, fromSource ? 0 : instances, null),
                request.SourceUrl, fromSource ? request.Branch ?? "main" : null, fromSource ? request.DockerfilePath ?? "Dockerfile" : null,
                request.SourceUrl is null ? null : $"{ApiUrl}/hooks/{team}/{project}/{name}")
            {
                Readiness = request.HealthCheckPath is null ? DefaultReadiness : DefaultReadiness with { Type = ProbeTypes.Http, Path = request.HealthCheckPath },
            };
            apps.Add(app);
            return app with { WebhookSecret = request.SourceUrl is not null && request.WebhookSecret is null ? "whsec_ONCE" : null };
        });

    /// <summary>As the Api patches: members present change; in <c>env</c> a null value removes the variable.</summary>
    public Task<AppResponse> UpdateAppAsync(string team, string project, string app, UpdateAppRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            var apps = AppsOf(team, project);
            var a = Find(apps, app);
            var env = new Dictionary<string, string>(a.Env);
            foreach (var (k, v) in request.Env ?? [])
                if (v is null) env.Remove(k); else env[k] = v;
            var image = request.Image ?? a.Image;
            var instances = request.Instances ?? a.Instances;
            var updated = a with
            {
                Image = image, Instances = instances, MemoryMiB = request.MemoryMiB ?? a.MemoryMiB, CpuMillicores = request.CpuMillicores ?? a.CpuMillicores,
                Port = request.Port ?? a.Port, HealthCheckPath = request.HealthCheckPath ?? a.HealthCheckPath, Env = env, UpdatedAt = DateTime.UtcNow,
                // As the Api: without a probe of its own, readiness is HTTP on the healthCheckPath once one is set.
                Readiness = (request.HealthCheckPath ?? a.HealthCheckPath) is { } path && a.Readiness?.Type != ProbeTypes.Process
                    ? DefaultReadiness with { Type = ProbeTypes.Http, Path = path } : a.Readiness,
                Status = new AppStatus(a.Status?.Ready ?? 0, image is null ? 0 : instances, a.Status?.Message),
            };
            apps[apps.IndexOf(a)] = updated;
            return updated;
        });
    public Task DeleteAppAsync(string team, string project, string app, CancellationToken ct = default) =>
        Send(app, () =>
        {
            var apps = AppsOf(team, project);
            apps.Remove(Find(apps, app));
            return 0;
        });
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
        Send(request, () =>
        {
            if (request.Email is not { Length: > 0 and <= 254 } email || !email.Contains('@') || email.Trim() != email)
                throw Invalid("email", "must be an email address (at most 254 characters).");
            if (string.IsNullOrEmpty(request.Password)) throw Invalid("password", "is required.");
            if (UserExists(email)) throw Conflict("email", $"A user with the email '{email}' exists.");
            var u = new UserResponse("u" + Users.Count, email, request.PlatformAdmin, DateTime.UtcNow, false);
            Users.Add(u);
            return u;
        });

    /// <summary>As the Api creates a team: the name checked, then taken or not; the creator becomes its owner.</summary>
    public Task<TeamResponse> CreateTeamAsync(CreateTeamRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            Check("name", Names.Validate(request.Name));
            var name = request.Name!;
            if (TeamExists(name)) throw Conflict("name", $"A team named '{name}' exists.");
            var team = new TeamResponse(name, DateTime.UtcNow, "owner", new TeamQuotaResponse(Q(0, 4096), Q(0, 4000), Q(0, 10), Q(0, 10), Q(0, 5), Q(0, 10), Q(0, 2), 0,
                new BuildLimitsResponse(2048, 2000, 4096, 1800)));
            _createdTeams[name] = team;
            Teams.Add(new TeamSummary(name, team.CreatedAt, "owner"));
            Projects[name] = [];
            Members.Add(new MemberResponse(Me.Email, "owner", null));
            return team;
        });
    public Task<TeamQuotaResponse> SetTeamQuotaAsync(string team, TeamQuotaRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            RequireTeam(team);
            return Team(team).Quota;
        });

    public List<MemberResponse> Members { get; } = [];
    public Task<IReadOnlyList<MemberResponse>> MembersAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<MemberResponse>>(() =>
        {
            RequireTeam(team);
            return Members.OrderBy(m => m.Project).ThenBy(m => m.Email).ToList();
        });
    public Task<MemberResponse> SetMemberAsync(string team, string email, string role, CancellationToken ct = default) =>
        Send((email, role), () =>
        {
            RequireTeam(team);
            return Grant(email, role, null);
        });
    public Task RemoveMemberAsync(string team, string email, CancellationToken ct = default) =>
        Send(email, () =>
        {
            RequireTeam(team);
            return Revoke(email, null);
        });
    public Task<ProjectResponse> CreateProjectAsync(string team, CreateProjectRequest request, CancellationToken ct = default) =>
        Send(request, () =>
        {
            RequireTeam(team);
            Check("name", Names.Validate(request.Name));
            var name = request.Name!;
            if (ProjectExists(team, name)) throw Conflict("name", $"A project named '{name}' exists in team '{team}'.");
            var project = new ProjectResponse(name, team, DateTime.UtcNow, MyRole, new ProjectQuotaResponse(Q(0, null), Q(0, null), Q(0, null), Q(0, null)));
            _createdProjects[$"{team}/{name}"] = project;
            (Projects.TryGetValue(team, out var list) ? list : Projects[team] = []).Add(new ProjectSummary(name, team, project.CreatedAt));
            return project;
        });
    public Task<MemberResponse> SetProjectMemberAsync(string team, string project, string email, string role, CancellationToken ct = default) =>
        Send((email, role), () =>
        {
            AppsOf(team, project);
            return Grant(email, role, project);
        });
    public Task RemoveProjectMemberAsync(string team, string project, string email, CancellationToken ct = default) =>
        Send(email, () =>
        {
            AppsOf(team, project);
            return Revoke(email, project);
        });

    /// <summary>As the Api grants a role: the role checked, then the person; an existing grant in the same place changes.</summary>
    private MemberResponse Grant(string email, string role, string? project)
    {
        if (!Roles.Names.Contains(role)) throw Invalid("role", $"must be one of {string.Join(", ", Roles.Names)}.");
        if (project is not null && role == "owner") throw Invalid("role", "owner is a team role; grant it on the team.");
        if (!UserExists(email)) throw Invalid("email", $"No user has the email '{email}'.");
        var m = new MemberResponse(email, role, project);
        Members.RemoveAll(x => x.Project == project && string.Equals(x.Email, email, StringComparison.OrdinalIgnoreCase));
        Members.Add(m);
        return m;
    }

    private int Revoke(string email, string? project)
    {
        var m = Members.FirstOrDefault(x => x.Project == project && string.Equals(x.Email, email, StringComparison.OrdinalIgnoreCase))
            ?? throw NotFound($"Member '{email}'");
        if (project is null && m.Role == "owner" && Members.Count(x => x.Project is null && x.Role == "owner") <= 1)
            throw Invalid("email", "The team must keep at least one owner.");
        Members.Remove(m);
        return 0;
    }

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
    public RolloutResponse? Rollout { get; set; }
    public Task<RolloutResponse?> RolloutAsync(string team, string project, string app, CancellationToken ct = default) => Answer(() => Rollout);
    public Task<RolloutResponse> CancelRolloutAsync(string team, string project, string app, CancellationToken ct = default) =>
        Send(("cancel rollout", app), () => Rollout = Rollout! with
        {
            State = "Cancelled", Message = $"cancelled by dev@example.com, rolled back to generation {Rollout.Generation + 1}", FinishedAt = DateTime.UtcNow,
        });
    public List<AppEventResponse> Events { get; } = [];
    public Task<IReadOnlyList<AppEventResponse>> EventsAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer<IReadOnlyList<AppEventResponse>>(() => Events);
    /// <summary>What the app's traffic chart shows, per window asked for (none: an empty hour).</summary>
    public Dictionary<string, RequestSeriesResponse> Requests { get; } = [];
    public List<string> RequestWindowsAsked { get; } = [];
    public Task<RequestSeriesResponse> RequestsAsync(string team, string project, string app, string window, CancellationToken ct = default) =>
        Answer(() =>
        {
            lock (RequestWindowsAsked) RequestWindowsAsked.Add(window);
            Find(AppsOf(team, project), app);
            if (Requests.TryGetValue(window, out var r)) return r;
            // As the Api: every step of the window present, zeros where nothing came.
            var (minutes, step) = window switch
            {
                "1h" => (60, 1), "6h" => (360, 5), "24h" => (1440, 15),
                _ => throw Invalid("window", "is one of 1h, 6h, 24h."),
            };
            var start = DateTime.UtcNow.AddMinutes(-minutes);
            return new RequestSeriesResponse(window, step * 60,
                Enumerable.Range(0, minutes / step).Select(i => new RequestPoint(start.AddMinutes(i * step), 0, 0, 0, 0, 0, null, null)).ToList(), 0, 0, null, null);
        });
    public List<DomainResponse> Domains { get; } = [];
    private readonly Dictionary<string, string> _domainHolders = [];
    /// <summary>Whether the platform has an ACME directory (what a new claim's message says).</summary>
    public bool AcmeConfigured { get; set; } = true;
    public Task<IReadOnlyList<DomainResponse>> DomainsAsync(string team, string project, string app, CancellationToken ct = default) =>
        Answer<IReadOnlyList<DomainResponse>>(() => Domains.ToList());
    public Task<DomainResponse> PutDomainAsync(string team, string project, string app, string host, UploadedCertificate? certificate, CancellationToken ct = default) =>
        Send((host, new PutDomainRequest(certificate)), () =>
        {
            Find(AppsOf(team, project), app);
            host = DomainNames.Normalize(host);
            Check("host", DomainNames.Validate(host, "apps.localhost"));
            var holder = $"{team}/{project}/{app}";
            if (_domainHolders.TryGetValue(host, out var held) && held != holder)
                throw new ApiProblem(HttpStatusCode.Conflict, "The host is taken.", $"{host} is held by another app on this platform.",
                    new Dictionary<string, string[]> { ["host"] = [$"{host} is held by another app on this platform."] });
            _domainHolders[host] = holder;
            var message = certificate is not null ? "serving the uploaded certificate"
                : AcmeConfigured ? "waiting for the first ACME order"
                : "No ACME directory is configured on this platform: upload a certificate for this host (PUT with certificate), or ask an operator to set Platform__Acme__DirectoryUrl. The host is served over HTTP meanwhile.";
            var domain = new DomainResponse(host, certificate is null ? "Pending" : "Ready", message, certificate is null ? "acme" : "uploaded", null, null,
                $"{host}. CNAME {app}-{project}-{team}.apps.localhost. (for a zone apex, an A record to the router's address)", DateTime.UtcNow, DateTime.UtcNow);
            Domains.Add(domain);
            return domain;
        });
    public Task DeleteDomainAsync(string team, string project, string app, string host, CancellationToken ct = default) =>
        Send(("delete domain", host), () => _domainHolders.Remove(host) | Domains.RemoveAll(d => d.Host == host) > 0);
    public Dictionary<string, List<string>> Suffixes { get; } = [];
    public Task<IReadOnlyList<string>> DomainSuffixesAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<string>>(() => Suffixes.GetValueOrDefault(team) ?? []);
    public Task<IReadOnlyList<string>> SetDomainSuffixesAsync(string team, IReadOnlyList<string> suffixes, CancellationToken ct = default) =>
        Send<IReadOnlyList<string>>(new DomainSuffixesRequest(suffixes), () => Suffixes[team] = suffixes.Select(DomainNames.Normalize).Distinct().ToList());
    /// <summary>The apps domain's certificate (null: none uploaded).</summary>
    public IngressCertificateResponse? IngressCertificate { get; set; }
    public Task<IngressCertificateResponse?> IngressCertificateAsync(CancellationToken ct = default) => Answer(() => IngressCertificate);
    public Task<IngressCertificateResponse> PutIngressCertificateAsync(UploadedCertificate certificate, CancellationToken ct = default) =>
        Send(certificate, () => IngressCertificate = new IngressCertificateResponse(["*.apps.localhost"], DateTime.UtcNow.AddDays(90), DateTime.UtcNow));
    public Task DeleteIngressCertificateAsync(CancellationToken ct = default) =>
        Send<object>(("delete ingress certificate", 0), () => IngressCertificate = null!);
    public Task<IReadOnlyList<AuditEventResponse>> AuditAsync(string team, CancellationToken ct = default) =>
        Answer<IReadOnlyList<AuditEventResponse>>(() => [new AuditEventResponse(1, DateTime.UtcNow, "owner@example.com", "apps.create", team, $"app {team}/web/shop", "success", 201, $"/api/v1/teams/{team}/projects/web/apps")]);
    public string? MyRole { get; set; } = "owner";
    public TeamResponse Team(string name) => new(name, DateTime.UtcNow, MyRole,
        new TeamQuotaResponse(Q(512, 4096), Q(500, 4000), Q(2, 10), Q(1, 10), Q(1, 5), Q(0, 10), Q(0, 2), 0, new BuildLimitsResponse(2048, 2000, 4096, 1800)));
}
