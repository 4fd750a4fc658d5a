using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Platform.Api.Domains;

/// <summary>An ACME server's problem (RFC 8555 §6.7): its type, its words, and how long it asks to wait.</summary>
public sealed class AcmeException(string type, string detail, int status, TimeSpan? retryAfter = null)
    : Exception($"{detail} ({type})")
{
    public string Type { get; } = type;
    public string Detail { get; } = detail;
    public int Status { get; } = status;
    public TimeSpan? RetryAfter { get; } = retryAfter;
    public bool RateLimited => Type.EndsWith(":rateLimited", StringComparison.Ordinal);
}

/// <summary>
/// An ACME client (RFC 8555) for one thing: a certificate for one host through the http-01 challenge. The account
/// key is ECDSA P-256 (ES256, RFC 7518); requests are JWS with the key's JWK (new account) or the account URL
/// (everything after), each with a fresh nonce, retried when the server answers <c>badNonce</c> (§6.5); reads are
/// POST-as-GET (§6.3). The challenge's key authorization is handed to <paramref name="answer"/>, whose job is to
/// make every router replica serve it. No ACME package is served here, so this is written against the RFC with
/// .NET's own cryptography (docs/architecture.md says so).
/// </summary>
public sealed class AcmeClient(HttpClient http, Uri directoryUrl, ECDsa accountKey, string? email, TimeProvider clock)
{
    private const int MaxBadNonceRetries = 5;
    private JsonObject? _directory;
    private string? _nonce;
    private string? _account;

    /// <summary>The account key's JWK thumbprint (RFC 7638), the second half of every key authorization.</summary>
    public string Thumbprint
    {
        get
        {
            var p = accountKey.ExportParameters(false);
            // Members in lexical order, no white space (RFC 7638 §3).
            var canonical = $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{B64(p.Q.X!)}\",\"y\":\"{B64(p.Q.Y!)}\"}}";
            return B64(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
        }
    }

    /// <summary>The account's URL, registering the key (terms of service agreed) the first time.</summary>
    public async Task<string> AccountAsync(CancellationToken ct)
    {
        if (_account is not null) return _account;
        var payload = new JsonObject { ["termsOfServiceAgreed"] = true };
        if (email is not null) payload["contact"] = new JsonArray($"mailto:{email}");
        var (response, _) = await PostAsync(await UrlAsync("newAccount", ct), payload, ct, useJwk: true);
        _account = response.Headers.Location?.ToString() ?? throw new AcmeException("malformed", "The server gave no account URL.", 0);
        return _account;
    }

    /// <summary>
    /// A certificate for <paramref name="host"/>: orders it, answers its http-01 challenge through <paramref name="answer"/>
    /// (token, key authorization), finalizes with a CSR for a new ECDSA P-256 key and downloads the chain. Steps are told
    /// to <paramref name="progress"/> as they happen; the server's problems come as <see cref="AcmeException"/>.
    /// </summary>
    public async Task<(string ChainPem, string KeyPem)> IssueAsync(string host, Func<string, string, Task> answer, Func<string, Task> progress, TimeSpan patience, CancellationToken ct)
    {
        await AccountAsync(ct);
        await progress("ordering a certificate");
        var (ordered, order) = await PostAsync(await UrlAsync("newOrder", ct),
            new JsonObject { ["identifiers"] = new JsonArray(new JsonObject { ["type"] = "dns", ["value"] = host }) }, ct);
        var orderUrl = ordered.Headers.Location?.ToString() ?? throw new AcmeException("malformed", "The server gave no order URL.", 0);
        var until = clock.GetUtcNow() + patience;

        foreach (var authorizationUrl in order!["authorizations"]!.AsArray().Select(a => a!.GetValue<string>()))
        {
            var (_, authorization) = await PostAsync(authorizationUrl, null, ct);
            if (authorization!["status"]!.GetValue<string>() == "valid") continue;
            var challenge = authorization["challenges"]!.AsArray().FirstOrDefault(c => c!["type"]!.GetValue<string>() == "http-01")
                ?? throw new AcmeException("unsupported", $"The server offers no http-01 challenge for {host}.", 0);
            var token = challenge["token"]!.GetValue<string>();
            await answer(token, $"{token}.{Thumbprint}");
            await progress("answering the http-01 challenge");
            await PostAsync(challenge["url"]!.GetValue<string>(), new JsonObject(), ct);
            authorization = await PollAsync(authorizationUrl, ["valid"], until, ct, a =>
            {
                var failed = a["challenges"]?.AsArray().Select(c => c?["error"]).FirstOrDefault(e => e is not null);
                return new AcmeException(failed?["type"]?.GetValue<string>() ?? "unauthorized",
                    failed?["detail"]?.GetValue<string>() ?? $"The authorization for {host} is {a["status"]}.", 403);
            });
        }

        await progress("finalizing with a certificate signing request");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        order = await PollAsync(orderUrl, ["ready", "valid"], until, ct, Invalid);
        if (order["status"]!.GetValue<string>() == "ready")
        {
            await PostAsync(order["finalize"]!.GetValue<string>(), new JsonObject { ["csr"] = B64(request.CreateSigningRequest()) }, ct);
            order = await PollAsync(orderUrl, ["valid"], until, ct, Invalid);
        }

        await progress("downloading the certificate");
        var (downloaded, _) = await PostAsync(order["certificate"]!.GetValue<string>(), null, ct, accept: "application/pem-certificate-chain");
        var chain = await downloaded.Content.ReadAsStringAsync(ct);
        return (chain, key.ExportPkcs8PrivateKeyPem());

        static AcmeException Invalid(JsonObject o) =>
            new(o["error"]?["type"]?.GetValue<string>() ?? "orderNotReady", o["error"]?["detail"]?.GetValue<string>() ?? $"The order is {o["status"]}.", 403);
    }

    /// <summary>POST-as-GET <paramref name="url"/> until its status is one of <paramref name="done"/>; <c>invalid</c> (or time running out) throws.</summary>
    private async Task<JsonObject> PollAsync(string url, string[] done, DateTimeOffset until, CancellationToken ct, Func<JsonObject, AcmeException> invalid)
    {
        while (true)
        {
            var (response, body) = await PostAsync(url, null, ct);
            var status = body!["status"]!.GetValue<string>();
            if (done.Contains(status)) return body;
            if (status == "invalid") throw invalid(body);
            if (clock.GetUtcNow() >= until)
                throw new AcmeException("timeout", $"{url} was still {status} when the time for it ran out.", 0);
            var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
            await Task.Delay(wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait > TimeSpan.FromSeconds(10) ? TimeSpan.FromSeconds(10) : wait, clock, ct);
        }
    }

    private async Task<string> UrlAsync(string name, CancellationToken ct)
    {
        if (_directory is null)
        {
            using var response = await http.GetAsync(directoryUrl, ct);
            if (!response.IsSuccessStatusCode) throw new AcmeException("serverInternal", $"The ACME directory {directoryUrl} answered {(int)response.StatusCode}.", (int)response.StatusCode);
            _directory = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!.AsObject();
        }
        return _directory[name]?.GetValue<string>() ?? throw new AcmeException("malformed", $"The ACME directory has no {name}.", 0);
    }

    private async Task<string> NonceAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _nonce, null) is { } kept) return kept;
        using var request = new HttpRequestMessage(HttpMethod.Head, await UrlAsync("newNonce", ct));
        using var response = await http.SendAsync(request, ct);
        return response.Headers.TryGetValues("Replay-Nonce", out var values) ? values.First()
            : throw new AcmeException("malformed", "The server gave no Replay-Nonce.", (int)response.StatusCode);
    }

    /// <summary>A signed POST (a POST-as-GET when <paramref name="payload"/> is null); a badNonce answer is retried with the nonce it brought.</summary>
    private async Task<(HttpResponseMessage Response, JsonObject? Body)> PostAsync(string url, JsonObject? payload, CancellationToken ct, bool useJwk = false, string? accept = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            var header = new JsonObject { ["alg"] = "ES256", ["nonce"] = await NonceAsync(ct), ["url"] = url };
            if (useJwk)
            {
                var p = accountKey.ExportParameters(false);
                header["jwk"] = new JsonObject { ["crv"] = "P-256", ["kty"] = "EC", ["x"] = B64(p.Q.X!), ["y"] = B64(p.Q.Y!) };
            }
            else header["kid"] = _account;
            var protectedPart = B64(Encoding.UTF8.GetBytes(header.ToJsonString()));
            var payloadPart = payload is null ? "" : B64(Encoding.UTF8.GetBytes(payload.ToJsonString()));
            var signature = accountKey.SignData(Encoding.ASCII.GetBytes($"{protectedPart}.{payloadPart}"), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            var jws = new JsonObject { ["protected"] = protectedPart, ["payload"] = payloadPart, ["signature"] = B64(signature) }.ToJsonString();
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(jws, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/jose+json");
            if (accept is not null) request.Headers.Accept.ParseAdd(accept);
            var response = await http.SendAsync(request, ct);
            if (response.Headers.TryGetValues("Replay-Nonce", out var nonces)) _nonce = nonces.First();
            var text = await response.Content.ReadAsStringAsync(ct);
            if (response.IsSuccessStatusCode)
                return (response, accept is null && text.Length > 0 ? JsonNode.Parse(text)!.AsObject() : null);
            var problem = Problem(text);
            var type = problem?["type"]?.GetValue<string>() ?? "serverInternal";
            if (type.EndsWith(":badNonce", StringComparison.Ordinal) && attempt < MaxBadNonceRetries) continue;
            throw new AcmeException(type, problem?["detail"]?.GetValue<string>() ?? $"{(int)response.StatusCode} from {url}", (int)response.StatusCode,
                response.Headers.RetryAfter?.Delta ?? (response.Headers.RetryAfter?.Date is { } date ? date - clock.GetUtcNow() : null));
        }
    }

    private static JsonObject? Problem(string text)
    {
        try { return JsonNode.Parse(text) as JsonObject; }
        catch (JsonException) { return null; }
    }

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
