using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.Host.Files;

namespace Platform.NodeAgent.ControlPlane;

/// <summary>The node's credentials: the client the join token was exchanged for.</summary>
public sealed record Credentials(string NodeName, string ClientId, string ClientSecret, string TokenEndpoint);

/// <summary>
/// The Api says this node is no longer a member of the cluster (a platform admin removed it): its
/// credentials will never work again, so retrying is pointless. Not one of the failures
/// <see cref="Retry"/> retries.
/// </summary>
public sealed class NodeRevokedException(string message) : Exception(message);

/// <summary>
/// The agent's calls to the Api: joining once (the join token is exchanged for the node's own client
/// credentials, kept in the data folder, mode 0600), access tokens (client credentials, renewed a minute
/// before they expire), heartbeats, the desired-state long-poll and status reports.
/// </summary>
public sealed partial class ControlPlaneClient(Uri api, AgentLayout layout, TimeProvider clock, ILogger log) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = api, Timeout = TimeSpan.FromSeconds(30) };
    private readonly HttpClient _poll = new() { BaseAddress = api, Timeout = TimeSpan.FromSeconds(90) };
    private readonly Lock _lock = new();
    private string? _token;
    private DateTimeOffset _tokenExpires;

    public Credentials? Credentials { get; private set; }

    /// <summary>Forgets the access token (after a failure: the next call fetches a new one).</summary>
    public void Reset()
    {
        lock (_lock) _token = null;
    }

    public async Task<Credentials> LoadOrJoinAsync(string? joinToken, string nodeName, string address, CancellationToken ct)
    {
        var file = layout.Credentials;
        if (File.Exists(file))
            return Credentials = JsonSerializer.Deserialize<Credentials>(await File.ReadAllTextAsync(file, ct))!;
        if (string.IsNullOrEmpty(joinToken))
            throw new InvalidOperationException("This node has not joined yet: set Agent:JoinToken (POST /api/v1/nodes/join-tokens).");
        var response = await _http.PostAsJsonAsync("api/v1/nodes/join", new NodeJoinRequest(joinToken, nodeName, address), ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"Joining failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        var joined = (await response.Content.ReadFromJsonAsync<NodeJoinResponse>(ct))!;
        var credentials = new Credentials(joined.NodeName, joined.ClientId, joined.ClientSecret, joined.TokenEndpoint);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await PrivateFile.WriteAllTextAsync(file, JsonSerializer.Serialize(credentials), ct);
        LogJoined(log, joined.NodeName);
        return Credentials = credentials;
    }

    private async Task<string> TokenAsync(CancellationToken ct)
    {
        lock (_lock)
            if (_token is not null && clock.GetUtcNow() < _tokenExpires) return _token;
        var c = Credentials ?? throw new InvalidOperationException("the node has not joined");
        var response = await _http.PostAsync("connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = c.ClientId, ["client_secret"] = c.ClientSecret, ["scope"] = "platform",
        }), ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            // invalid_client: the Api no longer knows this client (its node was removed), however often we ask.
            if (StringField(body, "error") == "invalid_client")
                throw new NodeRevokedException("The token endpoint no longer knows this node's client (invalid_client).");
            throw new InvalidOperationException($"The token endpoint refused the node's credentials: {(int)response.StatusCode}");
        }
        using var json = JsonDocument.Parse(body);
        var token = json.RootElement.GetProperty("access_token").GetString()!;
        lock (_lock)
        {
            _token = token;
            _tokenExpires = clock.GetUtcNow().AddSeconds(json.RootElement.GetProperty("expires_in").GetInt32() - 60);
        }
        return token;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(ct));
        return await client.SendAsync(request, ct);
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var body = await response.Content.ReadAsStringAsync(ct);
        if (response.StatusCode == System.Net.HttpStatusCode.Forbidden && StringField(body, "type") == ProblemTypes.NodeRevoked)
            throw new NodeRevokedException($"The {what} was refused: this node was removed from the cluster.");
        throw new InvalidOperationException($"The {what} was refused: {(int)response.StatusCode} {body}");
    }

    /// <summary>A string member of a JSON object body (an OAuth error, a problem's type), or null for anything else.</summary>
    private static string? StringField(string body, string name)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty(name, out var t)
                && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (JsonException) { return null; }
    }

    /// <summary>
    /// After a removal: the credentials file is set aside (<c>credentials.json.revoked</c>), so the next
    /// start joins afresh with a new join token instead of retrying credentials that cannot work.
    /// </summary>
    public void ForgetCredentials()
    {
        if (File.Exists(layout.Credentials)) File.Move(layout.Credentials, layout.Credentials + ".revoked", overwrite: true);
        Reset();
    }

    /// <summary>Sends a heartbeat; returns how long to wait before the next one.</summary>
    public async Task<TimeSpan> HeartbeatAsync(NodeHeartbeat beat, CancellationToken ct)
    {
        using var response = await SendAsync(_http, HttpMethod.Post, "api/v1/nodes/heartbeat", JsonContent.Create(beat), ct);
        await EnsureAsync(response, "heartbeat", ct);
        var answer = (await response.Content.ReadFromJsonAsync<NodeHeartbeatResponse>(ct))!;
        return TimeSpan.FromSeconds(Math.Max(1, answer.HeartbeatSeconds));
    }

    /// <summary>The desired state once it is newer than <paramref name="revision"/>, or null when the long-poll ended with nothing new.</summary>
    public async Task<DesiredState?> DesiredAsync(long? revision, CancellationToken ct)
    {
        using var response = await SendAsync(_poll, HttpMethod.Get, "api/v1/nodes/desired" + (revision is { } r ? $"?revision={r}" : ""), null, ct);
        if (response.StatusCode == System.Net.HttpStatusCode.NotModified) return null;
        await EnsureAsync(response, "desired state", ct);
        return await response.Content.ReadFromJsonAsync<DesiredState>(ct);
    }

    public async Task ReportAsync(IReadOnlyList<InstanceReport> reports, CancellationToken ct)
    {
        foreach (var batch in reports.Chunk(100))
        {
            using var response = await SendAsync(_http, HttpMethod.Post, "api/v1/nodes/status", JsonContent.Create(new NodeStatusReport(batch)), ct);
            await EnsureAsync(response, "status report", ct);
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        _poll.Dispose();
    }

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Joined the cluster as node {Node}")]
    private static partial void LogJoined(ILogger logger, string node);
}
