using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Platform.NodeAgent.Images;

/// <summary>What the runtime needs from an image: its layers (bottom first) and its process defaults.</summary>
public sealed record PulledImage(
    string ManifestDigest, IReadOnlyList<string> Layers, IReadOnlyList<string> Entrypoint, IReadOnlyList<string> Cmd,
    IReadOnlyList<string> Env, string WorkingDir, string User);

/// <summary>What one image may take on the node (Agent:MaxImageBytes, MaxConfigBytes, MaxManifestBytes; docs/operations.md).</summary>
public sealed record ImageLimits(long MaxImageBytes = ImageLimits.DefaultMaxImageBytes, long MaxConfigBytes = 4 << 20, long MaxManifestBytes = 4 << 20)
{
    public const long DefaultMaxImageBytes = 8L << 30;
}

/// <summary>
/// Pulls an image from an OCI distribution registry (the platform's own) with Docker token auth:
/// resolves an index to linux/amd64, verifies every digest (manifest, config, layers) before using
/// the bytes, and unpacks layers into the <see cref="LayerStore"/>, skipping those already there.
/// Blobs stream to a temporary file while hashing: memory stays flat whatever the layer size. Manifests and
/// configs are read whole, so each has a cap; the layers of one image together may expand to at most
/// <see cref="ImageLimits.MaxImageBytes"/> (each also to the store's per-layer cap).
/// </summary>
public sealed class ImagePuller(HttpClient http, LayerStore layers, string scratchDir, string user, string secret, ImageLimits? limits = null)
{
    private readonly ImageLimits _limits = limits ?? new ImageLimits();

    private static readonly string[] ManifestTypes =
    [
        "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
    ];

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _tokens = new();

    /// <param name="reference">host:port/name:tag or host:port/name@sha256:… (the host is the registry <paramref name="http"/> talks to).</param>
    public async Task<PulledImage> PullAsync(string reference, CancellationToken ct)
    {
        var (name, tagOrDigest) = Parse(reference);
        var (manifestBytes, digest) = await ManifestAsync(name, tagOrDigest, ct);
        using var manifest = JsonDocument.Parse(manifestBytes);
        var root = manifest.RootElement;
        if (root.TryGetProperty("manifests", out var list))
        {
            var pick = list.EnumerateArray().FirstOrDefault(m =>
                m.TryGetProperty("platform", out var p) && p.GetProperty("os").GetString() == "linux" && p.GetProperty("architecture").GetString() == "amd64");
            if (pick.ValueKind != JsonValueKind.Object) throw new InvalidOperationException($"{reference} has no linux/amd64 image");
            return await PullAsync($"{RegistryPart(reference)}/{name}@{pick.GetProperty("digest").GetString()}", ct);
        }
        var configDigest = root.GetProperty("config").GetProperty("digest").GetString()!;
        var configBytes = await BlobBytesAsync(name, configDigest, ct);
        var layerDigests = root.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!).ToList();
        var expanded = 0L;
        foreach (var layer in layerDigests)
        {
            if (layers.Contains(layer))
            {
                expanded += layers.SizeOf(layer);
                if (expanded > _limits.MaxImageBytes)
                    throw new InvalidLayerException(layer, $"the image {name}@{digest} expands to more than {_limits.MaxImageBytes} bytes, the cap set by Agent:MaxImageBytes");
                continue;
            }
            var file = await BlobFileAsync(name, layer, long.MaxValue, "", ct);
            try
            {
                await using var stream = File.OpenRead(file);
                await layers.UnpackAsync(layer, stream, new ExpansionLimit(_limits.MaxImageBytes - expanded,
                    $"Agent:MaxImageBytes ({_limits.MaxImageBytes} for the whole image {name}@{digest}, {expanded} taken by the layers below)"), ct);
                expanded += layers.SizeOf(layer);
            }
            finally
            {
                File.Delete(file);
            }
        }
        using var config = JsonDocument.Parse(configBytes);
        var c = config.RootElement.TryGetProperty("config", out var cc) ? cc : default;
        IReadOnlyList<string> Strings(string property) =>
            c.ValueKind == JsonValueKind.Object && c.TryGetProperty(property, out var a) && a.ValueKind == JsonValueKind.Array
                ? a.EnumerateArray().Select(x => x.GetString()!).ToList() : [];
        string Text(string property) =>
            c.ValueKind == JsonValueKind.Object && c.TryGetProperty(property, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        return new PulledImage(digest, layerDigests, Strings("Entrypoint"), Strings("Cmd"), Strings("Env"), Text("WorkingDir") is { Length: > 0 } w ? w : "/", Text("User"));
    }

    private static string RegistryPart(string reference) => reference[..reference.IndexOf('/')];

    private static (string Name, string Reference) Parse(string reference)
    {
        var path = reference[(reference.IndexOf('/') + 1)..];
        var at = path.IndexOf('@');
        if (at > 0) return (path[..at], path[(at + 1)..]);
        var colon = path.LastIndexOf(':');
        return colon > path.LastIndexOf('/') ? (path[..colon], path[(colon + 1)..]) : (path, "latest");
    }

    private async Task<(byte[] Bytes, string Digest)> ManifestAsync(string name, string reference, CancellationToken ct)
    {
        using var response = await SendAsync(name, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"/v2/{name}/manifests/{reference}");
            foreach (var t in ManifestTypes) request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            return request;
        }, ct);
        var bytes = await BoundedBytesAsync(response, _limits.MaxManifestBytes,
            () => new InvalidDataException($"the manifest of {name}:{reference} is larger than {_limits.MaxManifestBytes} bytes, the cap set by Agent:MaxManifestBytes"), ct);
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (reference.StartsWith("sha256:", StringComparison.Ordinal) && reference != digest)
            throw new InvalidDataException($"the manifest of {name}@{reference} hashes to {digest}");
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var claimed) && claimed.First() != digest)
            throw new InvalidDataException($"the registry says {claimed.First()} but the manifest hashes to {digest}");
        return (bytes, digest);
    }

    /// <summary>Reads a response whole, failing with <paramref name="tooLarge"/> as soon as it passes <paramref name="max"/> bytes (before, when the length is announced).</summary>
    private static async Task<byte[]> BoundedBytesAsync(HttpResponseMessage response, long max, Func<Exception> tooLarge, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength > max) throw tooLarge();
        await using var source = await response.Content.ReadAsStreamAsync(ct);
        var bytes = new MemoryStream();
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await source.ReadAsync(buffer, ct)) > 0)
        {
            if (bytes.Length + read > max) throw tooLarge();
            bytes.Write(buffer, 0, read);
        }
        return bytes.ToArray();
    }

    private async Task<byte[]> BlobBytesAsync(string name, string digest, CancellationToken ct)
    {
        var file = await BlobFileAsync(name, digest, _limits.MaxConfigBytes, "Agent:MaxConfigBytes", ct);
        try { return await File.ReadAllBytesAsync(file, ct); }
        finally { File.Delete(file); }
    }

    /// <summary>
    /// Downloads a blob to a temporary file, hashing as it goes; refuses it when the digest differs or when it is larger than
    /// <paramref name="max"/> bytes (the cap <paramref name="setting"/> sets; nothing is left behind).
    /// </summary>
    private async Task<string> BlobFileAsync(string name, string digest, long max, string setting, CancellationToken ct)
    {
        Directory.CreateDirectory(scratchDir);
        File.SetUnixFileMode(scratchDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);   // other tenants' blobs: root only
        var file = Path.Combine(scratchDir, Guid.NewGuid().ToString("N"));
        InvalidDataException TooLarge() => new($"blob {digest} of {name} is larger than {max} bytes, the cap set by {setting}");
        using var response = await SendAsync(name, () => new HttpRequestMessage(HttpMethod.Get, $"/v2/{name}/blobs/{digest}"), ct);
        if (response.Content.Headers.ContentLength > max) throw TooLarge();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            await using var target = File.Create(file);
            await using var source = await response.Content.ReadAsStreamAsync(ct);
            var buffer = new byte[1 << 16];
            long total = 0;
            int read;
            while ((read = await source.ReadAsync(buffer, ct)) > 0)
            {
                if ((total += read) > max) throw TooLarge();
                hash.AppendData(buffer, 0, read);
                await target.WriteAsync(buffer.AsMemory(0, read), ct);
            }
        }
        catch
        {
            File.Delete(file);
            throw;
        }
        var actual = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
        if (actual != digest)
        {
            File.Delete(file);
            throw new InvalidDataException($"blob {digest} of {name} hashes to {actual}");
        }
        return file;
    }

    /// <summary>Sends with the cached registry token; on a 401 challenge, fetches a token for the scope and retries once.</summary>
    private async Task<HttpResponseMessage> SendAsync(string name, Func<HttpRequestMessage> make, CancellationToken ct)
    {
        var request = make();
        if (_tokens.TryGetValue(name, out var token)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.Unauthorized && response.Headers.WwwAuthenticate.FirstOrDefault() is { Scheme: "Bearer" } challenge)
        {
            response.Dispose();
            _tokens[name] = await TokenAsync(challenge.Parameter ?? "", ct);
            request = make();
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _tokens[name]);
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        }
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            response.Dispose();
            throw new HttpRequestException($"{request.RequestUri} answered {(int)response.StatusCode}: {body}", null, response.StatusCode);
        }
        return response;
    }

    private async Task<string> TokenAsync(string challenge, CancellationToken ct)
    {
        var parameters = challenge.Split(',').Select(p => p.Split('=', 2)).Where(p => p.Length == 2)
            .ToDictionary(p => p[0].Trim(), p => p[1].Trim().Trim('"'));
        var url = $"{parameters["realm"]}?service={Uri.EscapeDataString(parameters.GetValueOrDefault("service", ""))}"
            + (parameters.TryGetValue("scope", out var scope) ? $"&scope={Uri.EscapeDataString(scope)}" : "");
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{secret}")));
        using var response = await http.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode) throw new HttpRequestException($"the registry's token endpoint answered {(int)response.StatusCode}", null, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        return json.RootElement.GetProperty("token").GetString()!;
    }
}
