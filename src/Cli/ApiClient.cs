using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Platform.Cli;

/// <summary>A refusal or a failure the CLI reports and exits 1 on (exit 2 is a usage error, found before any call).</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>
/// The REST API as the CLI uses it: JSON in and out (the answers are printed as they came with <c>--json</c>), the
/// profile's token as Bearer, an expired access token refreshed once through the token endpoint (and the new pair
/// saved) before the call is retried, and problem details turned into the text a person reads: title, detail and
/// each field's message. A token is never part of any message.
/// </summary>
public sealed class ApiClient : IDisposable
{
    public const string ClientId = "platform-cli";
    private readonly HttpClient _http;
    private readonly Profile _profile;
    // PLATFORM_TOKEN: used for this process only, never written into the profile.
    private readonly string? _environmentToken;
    // The profile's tokens go only to the Api they were issued by: a --api or PLATFORM_API naming another origin gets none.
    private readonly bool _profileApplies;

    public ApiClient(Profile profile, string? apiOverride = null)
    {
        _profile = profile;
        var api = apiOverride ?? Environment.GetEnvironmentVariable("PLATFORM_API") ?? profile.Api
            ?? throw new CliException("Not signed in: run `platform login <api-url>` first (or set PLATFORM_API and PLATFORM_TOKEN).");
        if (!Uri.TryCreate(api.TrimEnd('/') + "/", UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new CliException($"'{api}' is not an http(s) URL of a Platform Api.");
        _http = new HttpClient { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("platform-cli", "0.1"));
        _environmentToken = Environment.GetEnvironmentVariable("PLATFORM_TOKEN") is { Length: > 0 } token ? token : null;
        _profileApplies = _environmentToken is null && profile.Api is not null && SameOrigin(baseUri, profile.Api);
    }

    /// <summary>Same scheme, host and port (default ports spelled or not).</summary>
    public static bool SameOrigin(Uri a, string b) =>
        Uri.TryCreate(b.TrimEnd('/') + "/", UriKind.Absolute, out var other)
        && string.Equals(a.Scheme, other.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, other.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == other.Port;

    /// <summary>The personal access token this process acts with (PLATFORM_TOKEN, or one signed in with), or null with a device sign-in.</summary>
    public string? PersonalToken => _environmentToken ?? (_profileApplies && _profile.Kind == "token" ? _profile.AccessToken : null);

    /// <summary>Whether the profile's sign-in is what this process uses (no PLATFORM_TOKEN, the same Api).</summary>
    public bool UsesProfile => _profileApplies;

    private string? Token => _environmentToken ?? (_profileApplies ? _profile.AccessToken : null);

    /// <summary>False for a caller that must not spend the refresh token (shell completion: cut short by its deadline, it would lose the new pair).</summary>
    public bool MayRefresh { get; init; } = true;

    private bool CanRefresh => MayRefresh && _profileApplies && _profile is { Kind: "device", RefreshToken: not null };

    public Uri BaseAddress => _http.BaseAddress!;

    public void Dispose() => _http.Dispose();

    public Task<JsonElement> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var response = await SendRawAsync(() => new HttpRequestMessage(method, path)
        {
            Content = body is null ? null : JsonContent.Create(body, options: new JsonSerializerOptions(JsonSerializerDefaults.Web)),
        }, HttpCompletionOption.ResponseContentRead, ct);
        if (response.StatusCode == HttpStatusCode.NoContent || response.Content.Headers.ContentLength == 0) return default;
        var text = await response.Content.ReadAsStringAsync(ct);
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Sends with the profile's token, refreshing it once on 401; throws the problem for any other failure.</summary>
    public async Task<HttpResponseMessage> SendRawAsync(Func<HttpRequestMessage> build, HttpCompletionOption completion, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            if (attempt == 0 && CanRefresh && _profile.ExpiresAt is { } expires && expires < DateTimeOffset.UtcNow.AddSeconds(30))
                await RefreshAsync(ct);
            using var request = build();
            if (Token is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, completion, ct);
            }
            catch (HttpRequestException e)
            {
                throw new CliException($"Cannot reach the Api at {_http.BaseAddress}: {e.Message}");
            }
            if (response.IsSuccessStatusCode) return response;
            using (response)
            {
                if (response.StatusCode == HttpStatusCode.Unauthorized && attempt == 0 && CanRefresh)
                {
                    await RefreshAsync(ct);
                    continue;
                }
                throw await ProblemAsync(response, ct);
            }
        }
    }

    private async Task RefreshAsync(CancellationToken ct)
    {
        // Another platform process (a second terminal) may have refreshed meanwhile: the Api rotates refresh tokens, and
        // presenting the spent one after its short grace would revoke the whole sign-in. Take the newer pair from disk.
        var saved = Config.Load();
        if (saved.Api == _profile.Api && saved.RefreshToken is not null && saved.RefreshToken != _profile.RefreshToken
            && saved.ExpiresAt > DateTimeOffset.UtcNow.AddSeconds(30))
        {
            (_profile.AccessToken, _profile.RefreshToken, _profile.ExpiresAt) = (saved.AccessToken, saved.RefreshToken, saved.ExpiresAt);
            return;
        }
        using var response = await _http.PostAsync("connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["client_id"] = ClientId, ["refresh_token"] = _profile.RefreshToken!,
        }), ct);
        var json = await ReadJsonAsync(response, ct);
        if (!response.IsSuccessStatusCode)
            throw new CliException("Your sign-in expired or was revoked" + (Str(json, "error_description") is { } why ? $" ({why})" : "") + ": run `platform login` again.");
        Store(_profile, json);
        // Only the token fields change on disk: whatever else another process saved meanwhile (its target) stays.
        saved.AccessToken = _profile.AccessToken;
        saved.RefreshToken = _profile.RefreshToken;
        saved.ExpiresAt = _profile.ExpiresAt;
        if (saved.Api == _profile.Api) Config.Save(saved);
    }

    /// <summary>Takes an access token (and its refresh token and lifetime) from a token endpoint's answer into the profile.</summary>
    public static void Store(Profile profile, JsonElement tokens)
    {
        profile.Kind = "device";
        profile.AccessToken = Str(tokens, "access_token");
        profile.RefreshToken = Str(tokens, "refresh_token") ?? profile.RefreshToken;
        profile.ExpiresAt = tokens.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var seconds)
            ? DateTimeOffset.UtcNow.AddSeconds(seconds) : null;
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        try { return JsonDocument.Parse(text.Length == 0 ? "{}" : text).RootElement.Clone(); }
        catch (JsonException) { return JsonDocument.Parse("{}").RootElement.Clone(); }
    }

    public static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>An Api refusal in words: its title, its detail, and every field with its message.</summary>
    public static async Task<CliException> ProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var json = await ReadJsonAsync(response, ct);
        var text = new StringBuilder();
        text.Append(Str(json, "title") ?? $"{(int)response.StatusCode} {response.ReasonPhrase}");
        var detail = Str(json, "detail");
        if (detail is not null) text.Append(' ').Append(detail);
        if (json.ValueKind == JsonValueKind.Object && json.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
            foreach (var field in errors.EnumerateObject().Where(f => f.Value.ValueKind == JsonValueKind.Array))
                foreach (var message in field.Value.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.String))
                    if (detail is null || !detail.Contains(message.GetString() ?? "", StringComparison.Ordinal))
                        text.Append($"\n  {field.Name}: {message.GetString()}");
        if (response.StatusCode == HttpStatusCode.Unauthorized && text.Length < 40)
            text.Append(" Run `platform login` (or check PLATFORM_TOKEN).");
        return new CliException(text.ToString());
    }
}
