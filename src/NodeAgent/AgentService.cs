using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Contracts;

namespace Platform.NodeAgent;

/// <summary>The <c>Agent</c> configuration section (DESIGN.md, "Contract").</summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";
    public string? ApiUrl { get; set; }
    public string? JoinToken { get; set; }
    public string DataDir { get; set; } = "./agent-data";
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();
    public string Address { get; set; } = "127.0.0.1";
    /// <summary>Memory and CPU kept for the system and the agent, not offered to instances.</summary>
    public long ReservedMemoryMiB { get; set; } = 256;
    public long ReservedCpuMillicores { get; set; } = 100;
}

public sealed class AgentOptionsValidator : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ApiUrl) || !Uri.TryCreate(o.ApiUrl, UriKind.Absolute, out _))
            errors.Add($"Agent:ApiUrl must be the Api's absolute URL (got '{o.ApiUrl}').");
        if (Names.Validate(o.NodeName) is { } bad)
            errors.Add($"Agent:NodeName '{o.NodeName}' {bad}");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Joins the cluster once (the join token is exchanged for the node's own client credentials, kept
/// in {DataDir}/credentials.json, mode 0600), then reports capacity and usage on the interval the
/// Api asks for. Failures are logged and retried with back-off; the loop only ends at shutdown.
/// </summary>
public sealed partial class AgentService(IOptions<AgentOptions> options, TimeProvider clock, ILogger<AgentService> log) : BackgroundService
{
    private sealed record Credentials(string NodeName, string ClientId, string ClientSecret, string TokenEndpoint);

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private string? _token;
    private DateTimeOffset _tokenExpires;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        _http.BaseAddress = new Uri(o.ApiUrl!.TrimEnd('/') + "/");
        LogStarted(log, o.NodeName, o.ApiUrl);
        var backoff = TimeSpan.FromSeconds(1);
        Credentials? credentials = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                credentials ??= await LoadOrJoinAsync(o, stoppingToken);
                var interval = await HeartbeatAsync(o, credentials, stoppingToken);
                backoff = TimeSpan.FromSeconds(1);
                await Task.Delay(interval, clock, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException or JsonException or TaskCanceledException)
            {
                LogFailed(log, e.Message, backoff.TotalSeconds);
                _token = null;
                await Task.Delay(backoff, clock, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
                backoff = TimeSpan.FromSeconds(Math.Min(30, backoff.TotalSeconds * 2));
            }
        }
        LogStopped(log, o.NodeName);
    }

    private async Task<Credentials> LoadOrJoinAsync(AgentOptions o, CancellationToken ct)
    {
        var file = Path.Combine(Path.GetFullPath(o.DataDir), "credentials.json");
        if (File.Exists(file))
            return JsonSerializer.Deserialize<Credentials>(await File.ReadAllTextAsync(file, ct))!;
        if (string.IsNullOrEmpty(o.JoinToken))
            throw new InvalidOperationException("This node has not joined yet: set Agent:JoinToken (POST /api/v1/nodes/join-tokens).");
        var response = await _http.PostAsJsonAsync("api/v1/nodes/join", new NodeJoinRequest(o.JoinToken, o.NodeName), ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"Joining failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        var joined = (await response.Content.ReadFromJsonAsync<NodeJoinResponse>(ct))!;
        var credentials = new Credentials(joined.NodeName, joined.ClientId, joined.ClientSecret, joined.TokenEndpoint);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var temp = file + ".tmp";
        await File.WriteAllTextAsync(temp, JsonSerializer.Serialize(credentials), ct);
        File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temp, file, overwrite: true);
        LogJoined(log, joined.NodeName);
        return credentials;
    }

    private async Task<string> TokenAsync(Credentials c, CancellationToken ct)
    {
        if (_token is not null && clock.GetUtcNow() < _tokenExpires) return _token;
        var response = await _http.PostAsync("connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = c.ClientId, ["client_secret"] = c.ClientSecret, ["scope"] = "platform",
        }), ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"The token endpoint refused the node's credentials: {(int)response.StatusCode}");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        _token = json.RootElement.GetProperty("access_token").GetString();
        _tokenExpires = clock.GetUtcNow().AddSeconds(json.RootElement.GetProperty("expires_in").GetInt32() - 60);
        return _token!;
    }

    private async Task<TimeSpan> HeartbeatAsync(AgentOptions o, Credentials c, CancellationToken ct)
    {
        var capacity = new NodeResources(MemoryMiB(), Environment.ProcessorCount * 1000L);
        var allocatable = new NodeResources(Math.Max(0, capacity.MemoryMiB - o.ReservedMemoryMiB), Math.Max(0, capacity.CpuMillicores - o.ReservedCpuMillicores));
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/nodes/heartbeat")
        {
            Content = JsonContent.Create(new NodeHeartbeat(o.Address, typeof(AgentService).Assembly.GetName().Version?.ToString(),
                capacity, allocatable, new NodeResources(0, 0), 0)),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(c, ct));
        var response = await _http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"The heartbeat was refused: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        var answer = (await response.Content.ReadFromJsonAsync<NodeHeartbeatResponse>(ct))!;
        return TimeSpan.FromSeconds(Math.Max(1, answer.HeartbeatSeconds));
    }

    /// <summary>MemTotal from /proc/meminfo, in MiB.</summary>
    private static long MemoryMiB()
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Node agent {Node} started; control plane {ApiUrl}")]
    private static partial void LogStarted(ILogger logger, string node, string? apiUrl);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Node agent {Node} stopped")]
    private static partial void LogStopped(ILogger logger, string node);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Joined the cluster as node {Node}")]
    private static partial void LogJoined(ILogger logger, string node);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Talking to the control plane failed ({Reason}); retrying in {Seconds} s")]
    private static partial void LogFailed(ILogger logger, string reason, double seconds);
}
