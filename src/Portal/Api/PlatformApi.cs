using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Platform.Contracts;

namespace Platform.Portal.Api;

/// <summary>An answer of the Api that is not a success, read from its problem details.</summary>
public sealed class ApiProblem(HttpStatusCode status, string title, string? detail, IReadOnlyDictionary<string, string[]> errors)
    : Exception(detail ?? title)
{
    public HttpStatusCode Status { get; } = status;
    public string Title { get; } = title;
    public string? Detail { get; } = detail;
    /// <summary>Messages per field (camelCase, as the Api names them), shown next to the field.</summary>
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;
    public bool IsForbidden => Status == HttpStatusCode.Forbidden;
    public bool IsNotFound => Status == HttpStatusCode.NotFound;

    /// <summary>What talking to the Api can end in besides an answer: a problem, no connection, a time-out.</summary>
    public static bool IsCallFailure(Exception e) => e is ApiProblem or HttpRequestException or TaskCanceledException;

    public string? For(string field) => Errors.TryGetValue(field, out var m) ? string.Join(" ", m) : null;

    public static async Task<ApiProblem> ReadAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        string title = response.ReasonPhrase ?? response.StatusCode.ToString();
        string? detail = null;
        try
        {
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var root = json.RootElement;
            if (root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String) title = t.GetString()!;
            if (root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String) detail = d.GetString();
            if (root.TryGetProperty("errors", out var e) && e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject())
                    errors[p.Name] = p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray().Select(x => x.ToString()).ToArray() : [p.Value.ToString()];
        }
        catch (JsonException)
        {
            // Not problem details: the status line says enough.
        }
        return new ApiProblem(response.StatusCode, title, detail, errors);
    }
}

/// <summary>What the Portal asks of the Api: its REST API only, with the signed-in person's token (no database).</summary>
public interface IPlatformApi
{
    Task<MeResponse> MeAsync(CancellationToken ct = default);
    Task<IReadOnlyList<TeamSummary>> TeamsAsync(CancellationToken ct = default);
    Task<TeamResponse> TeamAsync(string team, CancellationToken ct = default);
    Task<IReadOnlyList<ProjectSummary>> ProjectsAsync(string team, CancellationToken ct = default);
    Task<ProjectResponse> ProjectAsync(string team, string project, CancellationToken ct = default);
    Task<IReadOnlyList<AppResponse>> AppsAsync(string team, string project, CancellationToken ct = default);
    Task<AppResponse> AppAsync(string team, string project, string app, CancellationToken ct = default);
    Task<AppResponse> CreateAppAsync(string team, string project, CreateAppRequest request, CancellationToken ct = default);
    Task<AppResponse> UpdateAppAsync(string team, string project, string app, UpdateAppRequest request, CancellationToken ct = default);
    Task DeleteAppAsync(string team, string project, string app, CancellationToken ct = default);
    Task<IReadOnlyList<InstanceResponse>> InstancesAsync(string team, string project, string app, CancellationToken ct = default);
    Task<string> LogsAsync(string team, string project, string app, int tail, CancellationToken ct = default);
    Task<IReadOnlyList<ImageRepositoryResponse>> ImagesAsync(string team, CancellationToken ct = default);
    Task<IReadOnlyList<TokenResponse>> TokensAsync(CancellationToken ct = default);
    Task<CreatedTokenResponse> CreateTokenAsync(CreateTokenRequest request, CancellationToken ct = default);
    Task RevokeTokenAsync(string id, CancellationToken ct = default);
    Task<IReadOnlyList<NodeResponse>> NodesAsync(CancellationToken ct = default);
    Task<JoinTokenResponse> CreateJoinTokenAsync(CancellationToken ct = default);
    Task<IReadOnlyList<UserResponse>> UsersAsync(CancellationToken ct = default);
    Task<UserResponse> CreateUserAsync(CreateUserRequest request, CancellationToken ct = default);
    Task<TeamResponse> CreateTeamAsync(CreateTeamRequest request, CancellationToken ct = default);
    Task<TeamQuotaResponse> SetTeamQuotaAsync(string team, TeamQuotaRequest request, CancellationToken ct = default);
    Task<IReadOnlyList<MemberResponse>> MembersAsync(string team, CancellationToken ct = default);
    Task<MemberResponse> SetMemberAsync(string team, string email, string role, CancellationToken ct = default);
    Task RemoveMemberAsync(string team, string email, CancellationToken ct = default);
    Task<ProjectResponse> CreateProjectAsync(string team, CreateProjectRequest request, CancellationToken ct = default);
    Task<MemberResponse> SetProjectMemberAsync(string team, string project, string email, string role, CancellationToken ct = default);
    Task RemoveProjectMemberAsync(string team, string project, string email, CancellationToken ct = default);
    Task<IReadOnlyList<AuditEventResponse>> AuditAsync(string team, CancellationToken ct = default);
    Task<IReadOnlyList<BuildResponse>> BuildsAsync(string team, string project, string app, CancellationToken ct = default);
    Task<string> BuildLogAsync(string team, string project, string app, int number, CancellationToken ct = default);
    /// <summary>The build's log line by line: what is there, then each line as it is written, until the build ends.</summary>
    IAsyncEnumerable<string> FollowBuildLogAsync(string team, string project, string app, int number, CancellationToken ct = default);
    /// <summary>Builds again: <paramref name="commit"/>, or the head of the app's branch when null.</summary>
    Task<BuildResponse> StartBuildAsync(string team, string project, string app, string? commit = null, CancellationToken ct = default);
    Task<BuildResponse> CancelBuildAsync(string team, string project, string app, int number, CancellationToken ct = default);
    Task<IReadOnlyList<ReleaseResponse>> ListReleasesAsync(string team, string project, string app, CancellationToken ct = default);
    /// <summary>A new release running the image of release <paramref name="version"/>.</summary>
    Task<ReleaseResponse> RollbackAsync(string team, string project, string app, int version, CancellationToken ct = default);
    /// <summary>The app's current rollout, or null when it never rolled out.</summary>
    Task<RolloutResponse?> RolloutAsync(string team, string project, string app, CancellationToken ct = default);
    /// <summary>Cancels the rollout in progress: it is rolled back.</summary>
    Task<RolloutResponse> CancelRolloutAsync(string team, string project, string app, CancellationToken ct = default);
    Task<IReadOnlyList<AppEventResponse>> EventsAsync(string team, string project, string app, CancellationToken ct = default);
    Task<IReadOnlyList<DomainResponse>> DomainsAsync(string team, string project, string app, CancellationToken ct = default);
    /// <summary>The app's traffic through the router over <paramref name="window"/> (1h, 6h or 24h).</summary>
    Task<RequestSeriesResponse> RequestsAsync(string team, string project, string app, string window, CancellationToken ct = default);
    /// <summary>Claims <paramref name="host"/> for the app: a certificate from ACME, or <paramref name="certificate"/> when given.</summary>
    Task<DomainResponse> PutDomainAsync(string team, string project, string app, string host, UploadedCertificate? certificate, CancellationToken ct = default);
    Task DeleteDomainAsync(string team, string project, string app, string host, CancellationToken ct = default);
    Task<IReadOnlyList<string>> DomainSuffixesAsync(string team, CancellationToken ct = default);
    /// <summary>Sets the host suffixes the team may claim (platform admins); empty: any host.</summary>
    Task<IReadOnlyList<string>> SetDomainSuffixesAsync(string team, IReadOnlyList<string> suffixes, CancellationToken ct = default);
    /// <summary>The apps domain's wildcard certificate, or null before one is uploaded (platform admins).</summary>
    Task<IngressCertificateResponse?> IngressCertificateAsync(CancellationToken ct = default);
    Task<IngressCertificateResponse> PutIngressCertificateAsync(UploadedCertificate certificate, CancellationToken ct = default);
    Task DeleteIngressCertificateAsync(CancellationToken ct = default);
}

/// <summary>Attaches the signed-in person's access token (kept in the Portal's auth cookie) to every call.</summary>
public sealed class AccessTokenHandler(IHttpContextAccessor http) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        if (http.HttpContext is { } context && await context.GetTokenAsync("access_token") is { } token)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await base.SendAsync(request, ct);
    }
}

public sealed class PlatformApi(HttpClient http) : IPlatformApi
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private async Task<T> GetAsync<T>(string path, CancellationToken ct)
    {
        using var response = await http.GetAsync(path, ct);
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        return (await response.Content.ReadFromJsonAsync<T>(Json, ct))!;
    }

    private async Task<string> GetTextAsync(string path, CancellationToken ct)
    {
        using var response = await http.GetAsync(path, ct);
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        return await response.Content.ReadAsStringAsync(ct);
    }

    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body, options: Json) };
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        return response.StatusCode == HttpStatusCode.NoContent ? default! : (await response.Content.ReadFromJsonAsync<T>(Json, ct))!;
    }

    private static string E(string s) => Uri.EscapeDataString(s);
    private static string Apps(string team, string project) => $"api/v1/teams/{E(team)}/projects/{E(project)}/apps";

    public Task<MeResponse> MeAsync(CancellationToken ct = default) => GetAsync<MeResponse>("api/v1/me", ct);
    public async Task<IReadOnlyList<TeamSummary>> TeamsAsync(CancellationToken ct = default) => (await GetAsync<Page<TeamSummary>>("api/v1/teams?limit=200", ct)).Items;
    public Task<TeamResponse> TeamAsync(string team, CancellationToken ct = default) => GetAsync<TeamResponse>($"api/v1/teams/{E(team)}", ct);
    public async Task<IReadOnlyList<ProjectSummary>> ProjectsAsync(string team, CancellationToken ct = default) =>
        (await GetAsync<Page<ProjectSummary>>($"api/v1/teams/{E(team)}/projects?limit=200", ct)).Items;
    public Task<ProjectResponse> ProjectAsync(string team, string project, CancellationToken ct = default) =>
        GetAsync<ProjectResponse>($"api/v1/teams/{E(team)}/projects/{E(project)}", ct);
    public async Task<IReadOnlyList<AppResponse>> AppsAsync(string team, string project, CancellationToken ct = default) =>
        (await GetAsync<Page<AppResponse>>(Apps(team, project) + "?limit=200", ct)).Items;
    public Task<AppResponse> AppAsync(string team, string project, string app, CancellationToken ct = default) =>
        GetAsync<AppResponse>($"{Apps(team, project)}/{E(app)}", ct);
    public Task<AppResponse> CreateAppAsync(string team, string project, CreateAppRequest request, CancellationToken ct = default) =>
        SendAsync<AppResponse>(HttpMethod.Post, Apps(team, project), request, ct);
    public Task<AppResponse> UpdateAppAsync(string team, string project, string app, UpdateAppRequest request, CancellationToken ct = default) =>
        SendAsync<AppResponse>(HttpMethod.Patch, $"{Apps(team, project)}/{E(app)}", request, ct);
    public Task DeleteAppAsync(string team, string project, string app, CancellationToken ct = default) =>
        SendAsync<object>(HttpMethod.Delete, $"{Apps(team, project)}/{E(app)}", null, ct);
    public async Task<IReadOnlyList<InstanceResponse>> InstancesAsync(string team, string project, string app, CancellationToken ct = default) =>
        (await GetAsync<Page<InstanceResponse>>($"{Apps(team, project)}/{E(app)}/instances", ct)).Items;
    public Task<string> LogsAsync(string team, string project, string app, int tail, CancellationToken ct = default) =>
        GetTextAsync($"{Apps(team, project)}/{E(app)}/logs?tail={tail}", ct);
    public async Task<IReadOnlyList<ImageRepositoryResponse>> ImagesAsync(string team, CancellationToken ct = default) =>
        (await GetAsync<Page<ImageRepositoryResponse>>($"api/v1/teams/{E(team)}/images", ct)).Items;
    public async Task<IReadOnlyList<TokenResponse>> TokensAsync(CancellationToken ct = default) => (await GetAsync<Page<TokenResponse>>("api/v1/me/tokens", ct)).Items;
    public Task<CreatedTokenResponse> CreateTokenAsync(CreateTokenRequest request, CancellationToken ct = default) =>
        SendAsync<CreatedTokenResponse>(HttpMethod.Post, "api/v1/me/tokens", request, ct);
    public Task RevokeTokenAsync(string id, CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, $"api/v1/me/tokens/{E(id)}", null, ct);
    public async Task<IReadOnlyList<NodeResponse>> NodesAsync(CancellationToken ct = default) => (await GetAsync<Page<NodeResponse>>("api/v1/nodes", ct)).Items;
    public Task<JoinTokenResponse> CreateJoinTokenAsync(CancellationToken ct = default) =>
        SendAsync<JoinTokenResponse>(HttpMethod.Post, "api/v1/nodes/join-tokens", new CreateJoinTokenRequest(null), ct);
    public async Task<IReadOnlyList<UserResponse>> UsersAsync(CancellationToken ct = default) => (await GetAsync<Page<UserResponse>>("api/v1/users?limit=200", ct)).Items;
    public Task<UserResponse> CreateUserAsync(CreateUserRequest request, CancellationToken ct = default) =>
        SendAsync<UserResponse>(HttpMethod.Post, "api/v1/users", request, ct);
    public Task<TeamResponse> CreateTeamAsync(CreateTeamRequest request, CancellationToken ct = default) =>
        SendAsync<TeamResponse>(HttpMethod.Post, "api/v1/teams", request, ct);
    public Task<TeamQuotaResponse> SetTeamQuotaAsync(string team, TeamQuotaRequest request, CancellationToken ct = default) =>
        SendAsync<TeamQuotaResponse>(HttpMethod.Put, $"api/v1/teams/{E(team)}/quota", request, ct);
    public async Task<IReadOnlyList<MemberResponse>> MembersAsync(string team, CancellationToken ct = default) =>
        (await GetAsync<Page<MemberResponse>>($"api/v1/teams/{E(team)}/members", ct)).Items;
    public Task<MemberResponse> SetMemberAsync(string team, string email, string role, CancellationToken ct = default) =>
        SendAsync<MemberResponse>(HttpMethod.Put, $"api/v1/teams/{E(team)}/members/{E(email)}", new MemberRequest(role), ct);
    public Task RemoveMemberAsync(string team, string email, CancellationToken ct = default) =>
        SendAsync<object>(HttpMethod.Delete, $"api/v1/teams/{E(team)}/members/{E(email)}", null, ct);
    public Task<ProjectResponse> CreateProjectAsync(string team, CreateProjectRequest request, CancellationToken ct = default) =>
        SendAsync<ProjectResponse>(HttpMethod.Post, $"api/v1/teams/{E(team)}/projects", request, ct);
    public Task<MemberResponse> SetProjectMemberAsync(string team, string project, string email, string role, CancellationToken ct = default) =>
        SendAsync<MemberResponse>(HttpMethod.Put, $"api/v1/teams/{E(team)}/projects/{E(project)}/members/{E(email)}", new MemberRequest(role), ct);
    public Task RemoveProjectMemberAsync(string team, string project, string email, CancellationToken ct = default) =>
        SendAsync<object>(HttpMethod.Delete, $"api/v1/teams/{E(team)}/projects/{E(project)}/members/{E(email)}", null, ct);
    public async Task<IReadOnlyList<BuildResponse>> BuildsAsync(string team, string project, string app, CancellationToken ct = default) =>
        (await GetAsync<Page<BuildResponse>>($"{Apps(team, project)}/{E(app)}/builds", ct)).Items;
    public Task<string> BuildLogAsync(string team, string project, string app, int number, CancellationToken ct = default) =>
        GetTextAsync($"{Apps(team, project)}/{E(app)}/builds/{number}/log", ct);
    public Task<BuildResponse> StartBuildAsync(string team, string project, string app, string? commit = null, CancellationToken ct = default) =>
        SendAsync<BuildResponse>(HttpMethod.Post, $"{Apps(team, project)}/{E(app)}/builds", new CreateBuildRequest(commit), ct);
    public Task<BuildResponse> CancelBuildAsync(string team, string project, string app, int number, CancellationToken ct = default) =>
        SendAsync<BuildResponse>(HttpMethod.Post, $"{Apps(team, project)}/{E(app)}/builds/{number}/cancel", null, ct);
    public async Task<IReadOnlyList<ReleaseResponse>> ListReleasesAsync(string team, string project, string app, CancellationToken ct = default) =>
        (await GetAsync<Page<ReleaseResponse>>($"{Apps(team, project)}/{E(app)}/releases", ct)).Items;
    public Task<ReleaseResponse> RollbackAsync(string team, string project, string app, int version, CancellationToken ct = default) =>
        SendAsync<ReleaseResponse>(HttpMethod.Post, $"{Apps(team, project)}/{E(app)}/releases/{version}/rollback", null, ct);
    public async Task<IReadOnlyList<string>> DomainSuffixesAsync(string team, CancellationToken ct = default) =>
        (await GetAsync<DomainSuffixesResponse>($"api/v1/teams/{E(team)}/domain-suffixes", ct)).Suffixes;
    public async Task<IReadOnlyList<string>> SetDomainSuffixesAsync(string team, IReadOnlyList<string> suffixes, CancellationToken ct = default) =>
        (await SendAsync<DomainSuffixesResponse>(HttpMethod.Put, $"api/v1/teams/{E(team)}/domain-suffixes", new DomainSuffixesRequest(suffixes), ct)).Suffixes;
    public async Task<IngressCertificateResponse?> IngressCertificateAsync(CancellationToken ct = default)
    {
        using var response = await http.GetAsync("api/v1/ingress/certificate", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<IngressCertificateResponse>(Json, ct);
    }
    public Task<IngressCertificateResponse> PutIngressCertificateAsync(UploadedCertificate certificate, CancellationToken ct = default) =>
        SendAsync<IngressCertificateResponse>(HttpMethod.Put, "api/v1/ingress/certificate", certificate, ct);
    public Task DeleteIngressCertificateAsync(CancellationToken ct = default) => SendAsync<object>(HttpMethod.Delete, "api/v1/ingress/certificate", null, ct);
    public async Task<RolloutResponse?> RolloutAsync(string team, string project, string app, CancellationToken ct = default)
    {
        using var response = await http.GetAsync($"{Apps(team, project)}/{E(app)}/rollout", ct);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<RolloutResponse>(Json, ct);
    }
    public Task<RolloutResponse> CancelRolloutAsync(string team, string project, string app, CancellationToken ct = default) =>
        SendAsync<RolloutResponse>(HttpMethod.Post, $"{Apps(team, project)}/{E(app)}/rollout/cancel", null, ct);
    public async Task<IReadOnlyList<AppEventResponse>> EventsAsync(string team, string project, string app, CancellationToken ct = default) =>
        (await GetAsync<Page<AppEventResponse>>($"{Apps(team, project)}/{E(app)}/events?limit=50", ct)).Items;
    public async Task<IReadOnlyList<DomainResponse>> DomainsAsync(string team, string project, string app, CancellationToken ct = default) =>
        (await GetAsync<Page<DomainResponse>>($"{Apps(team, project)}/{E(app)}/domains", ct)).Items;
    public Task<RequestSeriesResponse> RequestsAsync(string team, string project, string app, string window, CancellationToken ct = default) =>
        GetAsync<RequestSeriesResponse>($"{Apps(team, project)}/{E(app)}/requests?window={E(window)}", ct);
    public Task<DomainResponse> PutDomainAsync(string team, string project, string app, string host, UploadedCertificate? certificate, CancellationToken ct = default) =>
        SendAsync<DomainResponse>(HttpMethod.Put, $"{Apps(team, project)}/{E(app)}/domains/{E(host)}", new PutDomainRequest(certificate), ct);
    public Task DeleteDomainAsync(string team, string project, string app, string host, CancellationToken ct = default) =>
        SendAsync<object>(HttpMethod.Delete, $"{Apps(team, project)}/{E(app)}/domains/{E(host)}", null, ct);

    /// <summary>
    /// Reads the log as Server-Sent Events: a <c>data:</c> event per line (multi-line data joined with '\n'),
    /// comments (keep-alives) skipped, and the <c>end</c> event (the build's final state) ending it.
    /// </summary>
    public async IAsyncEnumerable<string> FollowBuildLogAsync(string team, string project, string app, int number,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Apps(team, project)}/{E(app)}/builds/{number}/log");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        // Headers only: the body is read as it comes, and HttpClient's time-out does not cover it.
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) throw await ApiProblem.ReadAsync(response, ct);
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream);
        string? kind = null;
        var data = new List<string>();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                // A blank line dispatches the event gathered so far.
                if (kind == "end") yield break;
                if (data.Count > 0 && kind is null or "message") yield return string.Join('\n', data);
                kind = null;
                data.Clear();
                continue;
            }
            if (line[0] == ':') continue;
            var colon = line.IndexOf(':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' ')) value = value[1..];
            if (field == "event") kind = value;
            else if (field == "data") data.Add(value);
        }
    }

    public async Task<IReadOnlyList<AuditEventResponse>> AuditAsync(string team, CancellationToken ct = default) =>
        (await GetAsync<Page<AuditEventResponse>>($"api/v1/teams/{E(team)}/audit?limit=50", ct)).Items;
}
