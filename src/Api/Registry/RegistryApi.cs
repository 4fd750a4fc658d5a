using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// The OCI Distribution Spec registry at <c>/v2/</c>. Repository names contain slashes, so one
/// catch-all route parses the path (the operation is named by the last <c>/manifests/</c>,
/// <c>/blobs/</c>, <c>/tags/</c> or <c>/referrers/</c>) and dispatches after authorising it.
/// </summary>
public static partial class RegistryApi
{
    private static readonly string[] Methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

    [GeneratedRegex(@"^(?<name>.+)/(?<kind>manifests|blobs|tags|referrers)/(?<rest>.*)\z")]
    private static partial Regex Operation();

    public static IServiceCollection AddPlatformRegistry(this IServiceCollection services, PlatformOptions options)
    {
        services.AddSingleton<IBlobStore>(_ => options.Registry.S3.Bucket is null
            ? new FileSystemBlobStore(DataLayout.Of(options).Registry)
            : new S3BlobStore(new FileSystemBlobStore(DataLayout.Of(options).Registry), S3BlobStore.Client(options.Registry.S3), options.Registry.S3));
        services.TryAddSingleton<RepositoryCreationGate>();
        services.AddScoped<RegistryAuth>();
        services.TryAddScoped<RegistryRepositories>();
        services.TryAddScoped<RegistryQuota>();
        services.TryAddScoped<RegistryUploads>();
        services.TryAddScoped<RegistryBlobs>();
        services.TryAddScoped<RegistryManifests>();
        services.AddScoped<RegistryGc>();
        return services;
    }

    public static WebApplication MapRegistry(this WebApplication app)
    {
        app.MapGet("/registry/token", (HttpRequest request, RegistryAuth auth, CancellationToken ct) => auth.IssueTokenAsync(request, ct))
            .ExcludeFromDescription();
        app.MapMethods("/v2", Methods, DispatchAsync).ExcludeFromDescription();
        app.MapMethods("/v2/{**path}", Methods, DispatchAsync).ExcludeFromDescription();
        return app;
    }

    private static async Task<IResult> DispatchAsync(HttpContext http, string? path, RegistryAuth auth, RegistryRepositories repositories,
        RegistryUploads uploads, RegistryBlobs blobs, RegistryManifests manifests, CancellationToken ct)
    {
        var request = http.Request;
        http.Response.Headers["Docker-Distribution-API-Version"] = "registry/2.0";
        // Blobs can be large: the registry bounds them itself while streaming (Platform:Registry:MaxBlobBytes).
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = null;

        var (outcome, caller) = await auth.AuthenticateAsync(request, ct);
        path ??= "";
        if (path is "" or "/")
        {
            if (outcome != RegistryAuth.Outcome.Ok) return Unauthorized(http, auth, null, outcome);
            return Results.Json(new { });
        }
        if (path == "_catalog")
        {
            if (outcome != RegistryAuth.Outcome.Ok) return Unauthorized(http, auth, "registry:catalog:*", outcome);
            var catalogAllowed = caller!.IsTokenBound ? caller.Granted!.ContainsKey("registry:catalog") : caller.IsPlatformAdmin;
            return catalogAllowed ? await repositories.CatalogAsync(http, ct) : RegistryErrors.Denied("the catalog is for platform admins");
        }

        var match = Operation().Match(path);
        if (!match.Success)
            return RegistryErrors.Error(404, "NOT_FOUND", "no such registry endpoint");
        var name = match.Groups["name"].Value;
        var kind = match.Groups["kind"].Value;
        var rest = match.Groups["rest"].Value;
        var method = request.Method;
        var action = kind switch
        {
            _ when HttpMethods.IsDelete(method) && !(kind == "blobs" && rest.StartsWith("uploads", StringComparison.Ordinal)) => RegistryAction.Delete,
            _ when HttpMethods.IsGet(method) || HttpMethods.IsHead(method) => kind == "blobs" && rest.StartsWith("uploads", StringComparison.Ordinal)
                ? RegistryAction.Push : RegistryAction.Pull,
            _ => RegistryAction.Push,
        };
        var scope = $"repository:{name}:{(action == RegistryAction.Pull ? "pull" : action == RegistryAction.Push ? "pull,push" : "delete")}";
        if (outcome != RegistryAuth.Outcome.Ok)
            return Unauthorized(http, auth, scope, outcome);
        if (RegistryNames.Parse(name) is not { } parsed)
            return RegistryErrors.NameInvalid(name);
        if (await AuthorizeAsync(http, auth, caller!, parsed, action, scope, ct) is { } refused)
            return refused;

        return (kind, rest, method) switch
        {
            ("manifests", _, "GET" or "HEAD") => await manifests.GetAsync(http, parsed, rest, ct),
            ("manifests", _, "PUT") => await manifests.PutAsync(http, parsed, rest, caller!, ct),
            ("manifests", _, "DELETE") => await manifests.DeleteAsync(parsed, rest, caller!, ct),
            ("blobs", "uploads" or "uploads/", "POST") =>
                await blobs.MountAsync(http, parsed, from => CanAsync(auth, caller!, from, RegistryAction.Pull, ct), ct)
                ?? await uploads.StartAsync(http, parsed, ct),
            ("blobs", _, "PATCH") when rest.StartsWith("uploads/", StringComparison.Ordinal) => await uploads.PatchAsync(http, parsed, rest[8..], ct),
            ("blobs", _, "PUT") when rest.StartsWith("uploads/", StringComparison.Ordinal) => await uploads.FinishAsync(http, parsed, rest[8..], ct),
            ("blobs", _, "GET") when rest.StartsWith("uploads/", StringComparison.Ordinal) => await uploads.StatusAsync(http, parsed, rest[8..], ct),
            ("blobs", _, "DELETE") when rest.StartsWith("uploads/", StringComparison.Ordinal) => await uploads.CancelAsync(parsed, rest[8..], ct),
            ("blobs", _, "GET" or "HEAD") => await blobs.GetAsync(http, parsed, rest, ct),
            ("blobs", _, "DELETE") => await blobs.DeleteAsync(parsed, rest, ct),
            ("tags", "list", "GET") => await manifests.TagsAsync(http, parsed, ct),
            ("referrers", _, "GET") => await manifests.ReferrersAsync(http, parsed, rest, ct),
            _ => RegistryErrors.Unsupported($"{method} is not supported here"),
        };
    }

    private static IResult Unauthorized(HttpContext http, RegistryAuth auth, string? scope, RegistryAuth.Outcome outcome)
    {
        http.Response.Headers.WWWAuthenticate = auth.Challenge(http.Request, scope, outcome == RegistryAuth.Outcome.Invalid ? "invalid_token" : null);
        return RegistryErrors.Error(401, "UNAUTHORIZED", "authentication required");
    }

    /// <summary>Null when allowed; otherwise the refusal: 401 for a token without the scope (the client may ask
    /// for a new one), 404 when the caller holds no role in the team, 403 when the role is too low.</summary>
    private static async Task<IResult?> AuthorizeAsync(
        HttpContext http, RegistryAuth auth, RegistryCaller caller, RegistryNames.Parsed name, RegistryAction action, string scope, CancellationToken ct)
    {
        if (caller.IsTokenBound)
        {
            if (caller.Granted!.TryGetValue("repository:" + name.Name, out var granted) && granted.Contains(RegistryAuth.Wire(action)))
                return null;
            http.Response.Headers.WWWAuthenticate = auth.Challenge(http.Request, scope, "insufficient_scope");
            return RegistryErrors.Error(401, "UNAUTHORIZED", "the token does not grant this action on this repository");
        }
        var allowed = await auth.RoleActionsAsync(caller, name, ct);
        if (allowed is null) return RegistryErrors.NameUnknown(name.Name);
        return allowed.Contains(action) ? null : RegistryErrors.Denied($"your role does not allow {RegistryAuth.Wire(action)} on {name.Name}");
    }

    private static async Task<bool> CanAsync(RegistryAuth auth, RegistryCaller caller, RegistryNames.Parsed name, RegistryAction action, CancellationToken ct)
    {
        if (caller.IsTokenBound)
            return caller.Granted!.TryGetValue("repository:" + name.Name, out var g) && g.Contains(RegistryAuth.Wire(action));
        return (await auth.RoleActionsAsync(caller, name, ct))?.Contains(action) == true;
    }
}
