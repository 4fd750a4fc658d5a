using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Instances;

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
    /// <summary>Cgroup parent of this agent's containers (two agents on one machine need two).</summary>
    public string? CgroupParent { get; set; }
    /// <summary>Prefix of the per-project bridges (at most 8 characters: the slot number follows).</summary>
    public string BridgePrefix { get; set; } = "plat";
    public string CniBin { get; set; } = "/usr/lib/cni";
    /// <summary>Host ports handed to instances for the router.</summary>
    public int PortRangeStart { get; set; } = 20000;
    public int PortRangeSize { get; set; } = 10000;
    /// <summary>The agent's control endpoint (logs, for the Api); 0 picks a free port, reported in heartbeats.</summary>
    public int ControlPort { get; set; }
    public int StopGraceSeconds { get; set; } = 10;
    public int MaxParallelStarts { get; set; } = 8;
    public long LogMaxBytes { get; set; } = 10 * 1024 * 1024;
    public int PidsLimit { get; set; } = 1024;
    /// <summary>Second octet of the first project subnet (10.{base}.0.0/24; slots use 8 × 256 subnets from it).</summary>
    public int SubnetBase { get; set; } = 88;

    public RuntimeSettings Runtime() => new(Path.GetFullPath(DataDir), CgroupParent ?? "platform-" + NodeName, BridgePrefix, CniBin,
        PortRangeStart, PortRangeSize, TimeSpan.FromSeconds(StopGraceSeconds), MaxParallelStarts, LogMaxBytes, PidsLimit, SubnetBase);
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
        if (string.IsNullOrEmpty(o.BridgePrefix) || o.BridgePrefix.Length > 8 || !o.BridgePrefix.All(char.IsAsciiLetterLower))
            errors.Add($"Agent:BridgePrefix '{o.BridgePrefix}' must be 1 to 8 lower-case letters.");
        if (o.PortRangeStart is < 1024 or > 65535 || o.PortRangeSize < 1 || o.PortRangeStart + o.PortRangeSize > 65536)
            errors.Add("Agent:PortRangeStart and PortRangeSize must describe ports within 1024–65535.");
        if (o.SubnetBase is < 1 or > 247) errors.Add("Agent:SubnetBase must be between 1 and 247 (10.{base}.0.0/24 to 10.{base+7}.255.0/24).");
        if (o.ControlPort is < 0 or > 65535) errors.Add("Agent:ControlPort must be 0 (any free port) or a port number.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Joins the cluster once (the join token is exchanged for the node's own client credentials, kept
/// in {DataDir}/credentials.json, mode 0600), adopts what a previous run left running, then runs three
/// loops: heartbeats (capacity, allocatable, usage, the control endpoint), the desired-state long-poll
/// (a change reaches the node as soon as the Api commits it) and the reconcile loop, whose status
/// changes go back at once (usage every 10 s when it moved, everything every 60 s). Failures are retried with back-off.
/// </summary>
public sealed partial class AgentService(IOptions<AgentOptions> options, TimeProvider clock, ILogger<AgentService> log, ILoggerFactory loggers) : BackgroundService
{
    private sealed record Credentials(string NodeName, string ClientId, string ClientSecret, string TokenEndpoint);

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly HttpClient _poll = new() { Timeout = TimeSpan.FromSeconds(90) };
    private readonly ControlServer _control = new();
    private readonly SemaphoreSlim _reportNow = new(0);
    private string? _token;
    private DateTimeOffset _tokenExpires;
    private InstanceManager? _instances;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        _http.BaseAddress = _poll.BaseAddress = new Uri(o.ApiUrl!.TrimEnd('/') + "/");
        LogStarted(log, o.NodeName, o.ApiUrl);
        var (joined, credentials) = await RetryAsync(ct => LoadOrJoinAsync(o, ct), stoppingToken);
        if (!joined) return;

        var registry = new HttpClient { BaseAddress = _http.BaseAddress, Timeout = TimeSpan.FromMinutes(10) };
        var manager = new InstanceManager(o.Runtime() with { Registry = _http.BaseAddress.Authority },
            () => new ImagePuller(registry, new LayerStore(Path.Combine(Path.GetFullPath(o.DataDir), "layers")),
                Path.Combine(Path.GetFullPath(o.DataDir), "scratch"), credentials.ClientId, credentials.ClientSecret),
            clock, loggers.CreateLogger<InstanceManager>());
        await manager.AdoptAsync(stoppingToken);
        _instances = manager;
        manager.Changed += () => _reportNow.Release();
        await _control.StartAsync(o.Address, o.ControlPort, manager, stoppingToken);

        await Task.WhenAll(
            HeartbeatLoopAsync(o, credentials, stoppingToken),
            DesiredLoopAsync(credentials, manager, stoppingToken),
            ReportLoopAsync(credentials, manager, stoppingToken),
            manager.RunAsync(stoppingToken));
        LogStopped(log, o.NodeName);
    }

    /// <summary>Runs <paramref name="step"/> until it succeeds, backing off from 1 s to 30 s; not Ok only at shutdown.</summary>
    private async Task<(bool Ok, T Value)> RetryAsync<T>(Func<CancellationToken, Task<T>> step, CancellationToken ct)
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                return (true, await step(ct));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException or JsonException or TaskCanceledException or IOException)
            {
                LogFailed(log, e.Message, backoff.TotalSeconds);
                _token = null;
                await Task.Delay(backoff, clock, ct).ContinueWith(_ => { }, CancellationToken.None);
                backoff = TimeSpan.FromSeconds(Math.Min(30, backoff.TotalSeconds * 2));
            }
        }
        return (false, default!);
    }

    private async Task HeartbeatLoopAsync(AgentOptions o, Credentials c, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var (ok, wait) = await RetryAsync(t => HeartbeatAsync(o, c, t), ct);
            if (!ok) return;
            await Task.Delay(wait, clock, ct).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    private async Task DesiredLoopAsync(Credentials c, InstanceManager manager, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var (ok, desired) = await RetryAsync<DesiredState?>(async t =>
            {
                var revision = manager.DesiredRevision;
                using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/nodes/desired" + (revision is { } r ? $"?revision={r}" : ""));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(c, t));
                using var response = await _poll.SendAsync(request, t);
                if (response.StatusCode == System.Net.HttpStatusCode.NotModified) return null;   // nothing changed within the poll
                if (!response.IsSuccessStatusCode)
                    throw new InvalidOperationException($"The desired state was refused: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(t)}");
                return await response.Content.ReadFromJsonAsync<DesiredState>(t);
            }, ct);
            if (!ok) return;
            if (desired is not null)
            {
                LogDesired(log, desired.Revision, desired.Instances.Count);
                manager.SetDesired(desired);
            }
        }
    }

    /// <summary>
    /// State changes go at once; usage (CPU, memory) that moved by more than a tenth goes every 10 s;
    /// everything every 60 s (a full resync). A busy node does not rewrite its rows every few seconds.
    /// </summary>
    private async Task ReportLoopAsync(Credentials c, InstanceManager manager, CancellationToken ct)
    {
        var sent = new Dictionary<Guid, InstanceReport>();
        var (lastFull, lastUsage) = (DateTime.MinValue, DateTime.MinValue);
        static InstanceReport StateOf(InstanceReport r) => r with { UsedCpuMillicores = 0, UsedMemoryBytes = 0 };
        static bool Moved(long before, long now) => Math.Abs(now - before) > Math.Max(before, now) / 10;
        while (!ct.IsCancellationRequested)
        {
            await _reportNow.WaitAsync(TimeSpan.FromSeconds(2), ct).ContinueWith(_ => { }, CancellationToken.None);
            await Task.Delay(50, ct).ContinueWith(_ => { }, CancellationToken.None);   // gather a burst of changes into one report
            while (_reportNow.CurrentCount > 0) _reportNow.Wait(0);
            var reports = manager.Reports();
            var now = DateTime.UtcNow;
            var full = now - lastFull > TimeSpan.FromSeconds(60);
            var usage = now - lastUsage > TimeSpan.FromSeconds(10);
            var changed = full ? reports : reports.Where(r => !sent.TryGetValue(r.Id, out var s) || StateOf(s) != StateOf(r)
                || usage && (Moved(s.UsedCpuMillicores, r.UsedCpuMillicores) || Moved(s.UsedMemoryBytes, r.UsedMemoryBytes))).ToList();
            if (usage) lastUsage = now;
            if (changed.Count == 0) continue;
            var (ok, _) = await RetryAsync(async t =>
            {
                foreach (var batch in changed.Chunk(100))
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/nodes/status") { Content = JsonContent.Create(new NodeStatusReport(batch)) };
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(c, t));
                    using var response = await _http.SendAsync(request, t);
                    if (!response.IsSuccessStatusCode)
                        throw new InvalidOperationException($"The status report was refused: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(t)}");
                }
                return true;
            }, ct);
            if (!ok) return;
            if (full) { lastFull = now; sent.Clear(); }
            foreach (var r in changed) sent[r.Id] = r;
        }
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
        var usage = _instances?.Usage() ?? (0, 0, 0);
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/nodes/heartbeat")
        {
            Content = JsonContent.Create(new NodeHeartbeat(o.Address, typeof(AgentService).Assembly.GetName().Version?.ToString(),
                capacity, allocatable, new NodeResources(usage.MemoryMiB, usage.CpuMillicores), usage.Running, _control.Port, _control.Key)),
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
        _poll.Dispose();
        _control.DisposeAsync().AsTask().GetAwaiter().GetResult();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Node agent {Node} started; control plane {ApiUrl}")]
    private static partial void LogStarted(ILogger logger, string node, string? apiUrl);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Node agent {Node} stopped")]
    private static partial void LogStopped(ILogger logger, string node);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Joined the cluster as node {Node}")]
    private static partial void LogJoined(ILogger logger, string node);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Desired state revision {Revision}: {Count} instance(s)")]
    private static partial void LogDesired(ILogger logger, long revision, int count);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Talking to the control plane failed ({Reason}); retrying in {Seconds} s")]
    private static partial void LogFailed(ILogger logger, string reason, double seconds);
}
