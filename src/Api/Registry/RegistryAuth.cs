using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Registry;

/// <summary>
/// Who calls the registry: a person (through a personal access token, directly or inside a registry
/// token), or a node agent (its client credentials), which may pull only what is scheduled to it.
/// </summary>
public sealed record RegistryCaller(string UserId, bool IsPlatformAdmin, IReadOnlyDictionary<string, HashSet<string>>? Granted, Guid? NodeId = null,
    BuildScope? Build = null)
{
    public const string NodePrefix = "node:";

    /// <summary>Callers with a registry token may do only what the token grants, whatever their roles.</summary>
    public bool IsTokenBound => Granted is not null;
}

public enum RegistryAction { Pull, Push, Delete }

/// <summary>
/// What a running build's credential may do, whatever its person's roles: pull <c>library/</c> and its own team's
/// repositories (its bases) and push its app's repository; the person's roles still have to allow each.
/// </summary>
/// <remarks>
/// The upstream-cache credential of a build (<see cref="UpstreamCache"/>) instead pulls and pushes only the platform's
/// copies of upstream bases (<c>library/upstream/…</c>): the Api's own skopeo uses it, buildah never sees it.
/// </remarks>
public sealed record BuildScope(Guid Build, string Team, string Repository, bool PersonIsPlatformAdmin, bool UpstreamCache = false);

/// <summary>
/// Docker's token authentication (and plain Basic with a personal access token). Tokens are short-lived,
/// carry repository scopes, and are protected with the platform's Data Protection keys, so any Api
/// replica sharing the keys accepts them.
/// </summary>
public sealed class RegistryAuth(PlatformDbContext db, IDataProtectionProvider protection, TimeProvider clock, IOptions<PlatformOptions> options,
    OpenIddict.Abstractions.IOpenIddictApplicationManager applications)
{
    public const string Service = "platform";
    public static readonly TimeSpan TokenLifetime = TimeSpan.FromMinutes(5);

    private ITimeLimitedDataProtector Protector => protection.CreateProtector("platform.registry.token").ToTimeLimitedDataProtector();

    private sealed record TokenPayload(string Sub, Dictionary<string, string[]> Access);

    /// <summary>The user name of a build's credential (its password is the credential itself).</summary>
    public const string BuildUser = "build";
    private const string BuildCredentialPrefix = "plat_build.";

    private ITimeLimitedDataProtector BuildProtector => protection.CreateProtector("platform.registry.build").ToTimeLimitedDataProtector();

    private sealed record BuildPayload(Guid Build, string Sub, string Team, string Repository, bool Cache);

    /// <summary>
    /// The registry credential of one build (Basic <see cref="BuildUser"/> and this): good only at the registry, only
    /// for <see cref="BuildScope"/>'s actions, only while the build runs and at the latest until <paramref name="expires"/>.
    /// It is no personal access token, so the REST API and git refuse it.
    /// </summary>
    public string BuildCredential(Guid build, string userId, string team, string repository, DateTimeOffset expires, bool upstreamCache = false) =>
        BuildCredentialPrefix + BuildProtector.Protect(JsonSerializer.Serialize(new BuildPayload(build, userId, team, repository, upstreamCache)), expires);

    private async Task<RegistryCaller?> BuildCallerAsync(string secret, CancellationToken ct)
    {
        BuildPayload payload;
        try
        {
            payload = JsonSerializer.Deserialize<BuildPayload>(BuildProtector.Unprotect(secret[BuildCredentialPrefix.Length..], out _))!;
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or FormatException or JsonException)
        {
            return null;
        }
        // Revoked with its build: once the build is no longer Running the credential opens nothing.
        if (!await db.Builds.AsNoTracking().AnyAsync(b => b.Id == payload.Build && b.State == Builds.BuildStates.Running, ct)) return null;
        var user = await UserAsync(payload.Sub, ct);
        return user is null ? null : new RegistryCaller(user.UserId, false, null, null, new BuildScope(payload.Build, payload.Team, payload.Repository, user.IsPlatformAdmin, payload.Cache));
    }

    public enum Outcome { Anonymous, Invalid, Ok }

    /// <summary>Reads the caller from <c>Authorization</c>: Basic or Bearer personal access token, or a registry token.</summary>
    public async Task<(Outcome, RegistryCaller?)> AuthenticateAsync(HttpRequest request, CancellationToken ct)
    {
        var header = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
            return (Outcome.Anonymous, null);
        if (PatAuthenticationHandler.ReadBasic(header) is { User: BuildUser } build && build.Password.StartsWith(BuildCredentialPrefix, StringComparison.Ordinal))
        {
            var caller = await BuildCallerAsync(build.Password, ct);
            return caller is null ? (Outcome.Invalid, null) : (Outcome.Ok, caller);
        }
        if (NodeCredentials(header) is { } node)
        {
            var caller = await NodeAsync(node.ClientId, node.Secret, ct);
            return caller is null ? (Outcome.Invalid, null) : (Outcome.Ok, caller);
        }
        if (PatAuthenticationHandler.ReadToken(header) is { } pat)
        {
            var user = await UserForPatAsync(pat, ct);
            return user is null ? (Outcome.Invalid, null) : (Outcome.Ok, user);
        }
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                var json = Protector.Unprotect(header[7..].Trim(), out _);
                var payload = JsonSerializer.Deserialize<TokenPayload>(json)!;
                var user = await UserAsync(payload.Sub, ct);
                if (user is null) return (Outcome.Invalid, null);
                return (Outcome.Ok, user with { Granted = payload.Access.ToDictionary(a => a.Key, a => a.Value.ToHashSet()) });
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or FormatException or JsonException)
            {
                return (Outcome.Invalid, null);
            }
        }
        return (Outcome.Invalid, null);
    }

    private async Task<RegistryCaller?> UserForPatAsync(string pat, CancellationToken ct) =>
        await PersonalAccessTokenLookup.FindAsync(db, pat, clock, ct) is { } found
            ? new RegistryCaller(found.UserId, found.IsPlatformAdmin, null)
            : null;

    /// <summary>Basic with a node's client id (<c>node-…</c>) and secret, as agents pull.</summary>
    private static (string ClientId, string Secret)? NodeCredentials(string header) =>
        PatAuthenticationHandler.ReadBasic(header) is { } basic && basic.User.StartsWith("node-", StringComparison.Ordinal)
            ? (basic.User, basic.Password)
            : null;

    private async Task<RegistryCaller?> NodeAsync(string clientId, string? secret, CancellationToken ct)
    {
        var node = await db.Nodes.AsNoTracking().Where(n => n.ClientId == clientId).Select(n => (Guid?)n.Id).FirstOrDefaultAsync(ct);
        if (node is null) return null;
        if (secret is not null)
        {
            var application = await applications.FindByClientIdAsync(clientId, ct);
            if (application is null || !await applications.ValidateClientSecretAsync(application, secret, ct)) return null;
        }
        return new RegistryCaller(RegistryCaller.NodePrefix + clientId, false, null, node);
    }

    private async Task<RegistryCaller?> UserAsync(string userId, CancellationToken ct)
    {
        if (userId.StartsWith(RegistryCaller.NodePrefix, StringComparison.Ordinal))
            return await NodeAsync(userId[RegistryCaller.NodePrefix.Length..], null, ct);
        var now = clock.GetUtcNow();
        var user = await db.Users.AsNoTracking().Where(u => u.Id == userId)
            .Select(u => new { u.Id, u.IsPlatformAdmin, u.LockoutEnd }).FirstOrDefaultAsync(ct);
        return user is null || user.LockoutEnd > now ? null : new RegistryCaller(user.Id, user.IsPlatformAdmin, null);
    }

    /// <summary>
    /// What the caller's roles allow on a repository: library/ is pulled by every user and pushed by
    /// platform admins; a project's repositories are pulled by its viewers and pushed and deleted by
    /// its developers. Null when the caller holds no role in the team (the repository is hidden).
    /// </summary>
    public async Task<HashSet<RegistryAction>?> RoleActionsAsync(RegistryCaller caller, RegistryNames.Parsed name, CancellationToken ct)
    {
        if (caller.Build is { UpstreamCache: true })
            return name.Name.StartsWith(Builds.DockerfileBases.CachePrefix, StringComparison.Ordinal) ? [RegistryAction.Pull, RegistryAction.Push] : null;
        if (caller.Build is { } build)
        {
            HashSet<RegistryAction> scope = name.Name == build.Repository ? [RegistryAction.Pull, RegistryAction.Push]
                : name.IsLibrary || name.Team == build.Team ? [RegistryAction.Pull] : [];
            if (scope.Count == 0) return null;
            var person = await RoleActionsAsync(caller with { Build = null, IsPlatformAdmin = build.PersonIsPlatformAdmin }, name, ct);
            if (person is null) return null;
            person.IntersectWith(scope);
            return person;
        }
        if (caller.NodeId is { } node)
            return await db.Instances.AnyAsync(i => i.NodeId == node && i.ImageRepository == name.Name, ct) ? [RegistryAction.Pull] : null;
        if (name.IsLibrary)
            return caller.IsPlatformAdmin ? [RegistryAction.Pull, RegistryAction.Push, RegistryAction.Delete] : [RegistryAction.Pull];
        var project = await db.Projects.AsNoTracking()
            .Where(p => p.Name == name.Project && p.Team!.Name == name.Team)
            .Select(p => new { p.Id, p.TeamId }).FirstOrDefaultAsync(ct);
        if (project is null)
            return null;
        if (caller.IsPlatformAdmin)
            return [RegistryAction.Pull, RegistryAction.Push, RegistryAction.Delete];
        var roles = await db.Memberships.AsNoTracking()
            .Where(m => m.UserId == caller.UserId && m.TeamId == project.TeamId && (m.ProjectId == null || m.ProjectId == project.Id))
            .Select(m => m.Role).ToListAsync(ct);
        if (roles.Count == 0)
            return null;
        return roles.Max() >= Role.Developer ? [RegistryAction.Pull, RegistryAction.Push, RegistryAction.Delete] : [RegistryAction.Pull];
    }

    public static string Wire(RegistryAction a) => a switch
    {
        RegistryAction.Pull => "pull",
        RegistryAction.Push => "push",
        _ => "delete",
    };

    /// <summary>The <c>WWW-Authenticate</c> challenge sending a client to the token endpoint for <paramref name="scope"/>.</summary>
    public string Challenge(HttpRequest request, string? scope, string? error = null)
    {
        var realm = $"{BaseUrl(request)}/registry/token";
        var sb = new StringBuilder($"Bearer realm=\"{realm}\",service=\"{Service}\"");
        if (scope is not null) sb.Append($",scope=\"{scope}\"");
        if (error is not null) sb.Append($",error=\"{error}\"");
        return sb.ToString();
    }

    private string BaseUrl(HttpRequest request) =>
        options.Value.PublicUrl?.TrimEnd('/') ?? $"{request.Scheme}://{request.Host}";

    /// <summary>
    /// The token endpoint (<c>GET /registry/token?service=…&amp;scope=repository:name:pull,push</c>) with
    /// Basic (any user + personal access token). Each requested scope is granted as far as the caller's roles allow.
    /// </summary>
    public async Task<IResult> IssueTokenAsync(HttpRequest request, CancellationToken ct)
    {
        var (outcome, caller) = await AuthenticateAsync(request, ct);
        if (outcome != Outcome.Ok || caller is null || caller.IsTokenBound)
        {
            request.HttpContext.Response.Headers.WWWAuthenticate = "Basic realm=\"platform\"";
            return RegistryErrors.Error(401, "UNAUTHORIZED", "sign in with any user name and a personal access token");
        }
        var access = new Dictionary<string, string[]>();
        foreach (var scope in request.Query["scope"].SelectMany(s => (s ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)))
        {
            var parts = scope.Split(':');
            if (parts.Length != 3) continue;
            var (type, name, actions) = (parts[0], parts[1], parts[2].Split(','));
            if (type == "registry" && name == "catalog" && caller.IsPlatformAdmin)
            {
                access["registry:catalog"] = ["*"];
                continue;
            }
            if (type != "repository" || RegistryNames.Parse(name) is not { } parsed) continue;
            var allowed = await RoleActionsAsync(caller, parsed, ct);
            if (allowed is null) continue;
            var granted = actions.Where(a => a == "*" ? false : allowed.Any(x => Wire(x) == a)).ToList();
            if (actions.Contains("*")) granted = allowed.Select(Wire).ToList();
            if (granted.Count > 0)
                access["repository:" + name] = access.TryGetValue("repository:" + name, out var had) ? [.. had.Union(granted)] : [.. granted];
        }
        var token = Protector.Protect(JsonSerializer.Serialize(new TokenPayload(caller.UserId, access)), clock.GetUtcNow().Add(TokenLifetime));
        return Results.Json(new
        {
            token,
            access_token = token,
            expires_in = (int)TokenLifetime.TotalSeconds,
            issued_at = clock.GetUtcNow().ToString("O"),
        });
    }
}
