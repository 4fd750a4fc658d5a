using System.Text.Json;

namespace Platform.Api.Registry;

/// <summary>Errors in the distribution spec's format: <c>{"errors":[{"code","message","detail"}]}</c>.</summary>
public static class RegistryErrors
{
    public static IResult Error(int status, string code, string message, object? detail = null) =>
        Results.Json(new { errors = new[] { new { code, message, detail } } }, JsonOptions, statusCode: status);

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    public static IResult NameUnknown(string name) => Error(404, "NAME_UNKNOWN", "repository name not known to registry", new { name });
    public static IResult NameInvalid(string name) => Error(400, "NAME_INVALID", "invalid repository name: use {team}/{project}/{app}[/...] or library/...", new { name });
    public static IResult BlobUnknown(string digest) => Error(404, "BLOB_UNKNOWN", "blob unknown to registry", new { digest });
    public static IResult BlobUploadUnknown() => Error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry");
    public static IResult BlobUploadInvalid(string message) => Error(400, "BLOB_UPLOAD_INVALID", message);
    public static IResult DigestInvalid(string message) => Error(400, "DIGEST_INVALID", message);
    public static IResult ManifestUnknown(string reference) => Error(404, "MANIFEST_UNKNOWN", "manifest unknown", new { reference });
    public static IResult ManifestInvalid(string message) => Error(400, "MANIFEST_INVALID", message);
    public static IResult ManifestBlobUnknown(string digest) => Error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", new { digest });
    public static IResult TagInvalid(string tag) => Error(400, "TAG_INVALID", "invalid tag", new { tag });
    public static IResult SizeInvalid(string message) => Error(413, "SIZE_INVALID", message);
    public static IResult Denied(string message) => Error(403, "DENIED", message);
    public static IResult Unsupported(string message) => Error(405, "UNSUPPORTED", message);
    public static IResult PaginationInvalid() => Error(400, "PAGINATION_NUMBER_INVALID", "n must be between 1 and 1000");
}
