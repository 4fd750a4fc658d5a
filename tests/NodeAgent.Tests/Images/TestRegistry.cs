using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Platform.NodeAgent.Tests.Images;

/// <summary>
/// The registry side of a pull, in memory: serves the manifests and blobs a test pushed, byte for byte, as the
/// distribution API does (no auth). What a tenant controls in a real registry — manifest, config, layers — it controls here.
/// </summary>
internal sealed class TestRegistry : HttpMessageHandler
{
    private readonly Dictionary<string, byte[]> _blobs = [];
    private readonly Dictionary<string, byte[]> _manifests = [];

    public HttpClient Client() => new(this) { BaseAddress = new Uri("http://registry.test/") };

    /// <summary>Pushes an OCI image (config and layers as given); returns the reference to pull.</summary>
    public string Push(string name, string tag, byte[] config, IEnumerable<byte[]> layers, string? annotation = null)
    {
        var layerList = new JsonArray();
        foreach (var layer in layers)
        {
            _blobs[TestLayers.Digest(layer)] = layer;
            layerList.Add(new JsonObject
            {
                ["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip", ["digest"] = TestLayers.Digest(layer), ["size"] = layer.Length,
            });
        }
        _blobs[TestLayers.Digest(config)] = config;
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2, ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
            ["config"] = new JsonObject { ["mediaType"] = "application/vnd.oci.image.config.v1+json", ["digest"] = TestLayers.Digest(config), ["size"] = config.Length },
            ["layers"] = layerList,
        };
        if (annotation is not null) manifest["annotations"] = new JsonObject { ["note"] = annotation };
        _manifests[$"{name}:{tag}"] = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        return $"registry.test/{name}:{tag}";
    }

    public static byte[] Config(params string[] env) => Encoding.UTF8.GetBytes(new JsonObject
    {
        ["architecture"] = "amd64", ["os"] = "linux",
        ["config"] = new JsonObject { ["Cmd"] = new JsonArray("sh"), ["Env"] = new JsonArray(env.Select(e => (JsonNode)e).ToArray()) },
    }.ToJsonString());

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var path = request.RequestUri!.AbsolutePath;   // /v2/{name}/manifests/{ref} or /v2/{name}/blobs/{digest}
        var manifests = path.LastIndexOf("/manifests/", StringComparison.Ordinal);
        var blobs = path.LastIndexOf("/blobs/", StringComparison.Ordinal);
        byte[]? body = null;
        if (manifests > 0) _manifests.TryGetValue($"{path[4..manifests]}:{path[(manifests + 11)..]}", out body);
        else if (blobs > 0) _blobs.TryGetValue(path[(blobs + 7)..], out body);
        return Task.FromResult(body is null
            ? new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new StringContent("{}") }
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) });
    }
}
