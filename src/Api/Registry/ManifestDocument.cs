using System.Text.Json;

namespace Platform.Api.Registry;

/// <summary>The parts of an image manifest or index that the registry checks and indexes.</summary>
public sealed record ManifestDocument(
    string MediaType, bool IsIndex, IReadOnlyList<string> Blobs, IReadOnlyList<string> Manifests,
    string? SubjectDigest, string? ArtifactType, string? AnnotationsJson)
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";

    public static readonly IReadOnlySet<string> Supported = new HashSet<string> { OciManifest, OciIndex, DockerManifest, DockerManifestList };

    public const int MaxBytes = 4 * 1024 * 1024;

    /// <summary>Parses and checks a manifest; the error says what is wrong, for MANIFEST_INVALID.</summary>
    public static (ManifestDocument? Document, string? Error) Parse(ReadOnlySpan<byte> body, string? contentType)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException)
        {
            return (null, "the manifest is not JSON");
        }
        using (json)
        {
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (null, "the manifest is not a JSON object");
            if (!root.TryGetProperty("schemaVersion", out var version) || version.ValueKind != JsonValueKind.Number || version.GetInt32() != 2)
                return (null, "schemaVersion must be 2");
            var declared = root.TryGetProperty("mediaType", out var mt) && mt.ValueKind == JsonValueKind.String ? mt.GetString() : null;
            var type = contentType?.Split(';')[0].Trim();
            if (string.IsNullOrEmpty(type) || type == "application/json" || type == "application/octet-stream")
                type = declared ?? (root.TryGetProperty("manifests", out _) ? OciIndex : OciManifest);
            if (!Supported.Contains(type))
                return (null, $"unsupported manifest media type '{type}'");
            if (declared is not null && declared != type)
                return (null, $"the mediaType field '{declared}' differs from Content-Type '{type}'");

            var isIndex = type is OciIndex or DockerManifestList;
            var blobs = new List<string>();
            var manifests = new List<string>();
            if (isIndex)
            {
                if (!root.TryGetProperty("manifests", out var list) || list.ValueKind != JsonValueKind.Array)
                    return (null, "an index needs a manifests array");
                foreach (var d in list.EnumerateArray())
                {
                    if (Descriptor(d) is not { } digest) return (null, "a manifest descriptor has no valid sha256 digest");
                    manifests.Add(digest);
                }
            }
            else
            {
                if (!root.TryGetProperty("config", out var config) || Descriptor(config) is not { } configDigest)
                    return (null, "an image manifest needs a config descriptor with a sha256 digest");
                blobs.Add(configDigest);
                if (root.TryGetProperty("layers", out var layers))
                {
                    if (layers.ValueKind != JsonValueKind.Array) return (null, "layers must be an array");
                    foreach (var d in layers.EnumerateArray())
                    {
                        if (Descriptor(d) is not { } digest) return (null, "a layer descriptor has no valid sha256 digest");
                        blobs.Add(digest);
                    }
                }
                else if (type == DockerManifest)
                {
                    return (null, "layers are required");
                }
            }
            string? subject = null;
            if (root.TryGetProperty("subject", out var s))
            {
                subject = Descriptor(s);
                if (subject is null) return (null, "subject must be a descriptor with a sha256 digest");
            }
            var artifactType = root.TryGetProperty("artifactType", out var at) && at.ValueKind == JsonValueKind.String ? at.GetString()
                : !isIndex && root.TryGetProperty("config", out var c) && c.TryGetProperty("mediaType", out var cmt) ? cmt.GetString()
                : null;
            var annotations = root.TryGetProperty("annotations", out var an) && an.ValueKind == JsonValueKind.Object ? an.GetRawText() : null;
            return (new ManifestDocument(type, isIndex, blobs.Distinct().ToList(), manifests.Distinct().ToList(), subject, artifactType, annotations), null);
        }
    }

    private static string? Descriptor(JsonElement d) =>
        d.ValueKind == JsonValueKind.Object && d.TryGetProperty("digest", out var digest) && digest.ValueKind == JsonValueKind.String
        && Digests.IsValid(digest.GetString()) ? digest.GetString() : null;
}
