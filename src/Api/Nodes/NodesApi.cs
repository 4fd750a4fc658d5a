using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using OpenIddict.Abstractions;
using Platform.Api.Access;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Nodes;

/// <summary>
/// Cluster membership. A platform admin issues a one-time join token; an agent exchanges it once for
/// its own OIDC client (client credentials), which it then uses for everything else.
/// </summary>
public static class NodesApi
{
    public static RouteGroupBuilder MapNodesApi(this RouteGroupBuilder api)
    {
        api.MapGet("/nodes", ListAsync).WithName("nodes.list");
        api.MapPost("/nodes/join-tokens", CreateJoinTokenAsync).WithName("nodes.join-tokens.create");
        return api;
    }

    /// <summary>The join itself is anonymous: the join token is the credential.</summary>
    public static RouteGroupBuilder MapNodeJoin(this RouteGroupBuilder anonymous)
    {
        anonymous.MapPost("/nodes/join", JoinAsync).WithName("nodes.join");
        return anonymous;
    }

    private static async Task<Results<Ok<Page<NodeResponse>>, ProblemHttpResult>> ListAsync(
        AccessService access, PlatformDbContext db, TimeProvider clock, Microsoft.Extensions.Options.IOptions<PlatformOptions> options, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins list nodes.");
        var now = clock.GetUtcNow().UtcDateTime;
        var notReadyAfter = TimeSpan.FromSeconds(options.Value.Nodes.NotReadyAfterSeconds);
        var rows = await db.Nodes.AsNoTracking().OrderBy(n => n.Name).ToListAsync(ct);
        return TypedResults.Ok(new Page<NodeResponse>(rows.Select(n => new NodeResponse(n.Name, n.JoinedAt, n.LastHeartbeatAt,
            n.LastHeartbeatAt is { } h && now - h < notReadyAfter ? "Ready" : "NotReady", n.Address, n.AgentVersion,
            new(n.CapacityMemoryMiB, n.CapacityCpuMillicores), new(n.AllocatableMemoryMiB, n.AllocatableCpuMillicores),
            new(n.UsedMemoryMiB, n.UsedCpuMillicores), n.RunningInstances)).ToList(), null));
    }

    /// <summary>Endpoints for node agents (client credentials of a joined node), not for people.</summary>
    public static RouteGroupBuilder MapNodeAgentApi(this RouteGroupBuilder agents)
    {
        agents.MapPost("/nodes/heartbeat", HeartbeatAsync).WithName("nodes.heartbeat");
        return agents;
    }

    private static async Task<Results<Ok<NodeHeartbeatResponse>, ProblemHttpResult>> HeartbeatAsync(
        NodeHeartbeat body, HttpContext http, PlatformDbContext db, TimeProvider clock,
        Microsoft.Extensions.Options.IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var clientId = http.User.FindFirst(Claims.Subject)?.Value;
        var node = http.User.FindFirst("client_kind")?.Value == "machine" && clientId is not null
            ? await db.Nodes.FirstOrDefaultAsync(n => n.ClientId == clientId, ct)
            : null;
        if (node is null) return Problems.Forbidden("Only joined node agents send heartbeats.");
        var errors = new Problems.Errors();
        if (body.Capacity is null) errors.Add("capacity", "is required.");
        foreach (var (field, r) in new[] { ("capacity", body.Capacity), ("allocatable", body.Allocatable), ("used", body.Used) })
            if (r is not null)
                errors.Range(field + ".memoryMiB", r.MemoryMiB, 0, Quantities.MaxQuota).Range(field + ".cpuMillicores", r.CpuMillicores, 0, Quantities.MaxQuota);
        errors.Range("runningInstances", body.RunningInstances, 0, 100_000);
        if (body.Address is { Length: > 255 } || body.Address?.Any(char.IsControl) == true) errors.Add("address", "must be a host name or address.");
        if (body.AgentVersion is { Length: > 64 }) errors.Add("agentVersion", "must be at most 64 characters.");
        if (errors.Any) return errors.ToProblem();

        node.LastHeartbeatAt = clock.GetUtcNow().UtcDateTime;
        node.Address = body.Address;
        node.AgentVersion = body.AgentVersion;
        (node.CapacityMemoryMiB, node.CapacityCpuMillicores) = (body.Capacity!.MemoryMiB, body.Capacity.CpuMillicores);
        var allocatable = body.Allocatable ?? body.Capacity;
        (node.AllocatableMemoryMiB, node.AllocatableCpuMillicores) = (allocatable.MemoryMiB, allocatable.CpuMillicores);
        (node.UsedMemoryMiB, node.UsedCpuMillicores) = body.Used is { } u ? (u.MemoryMiB, u.CpuMillicores) : (0L, 0L);
        node.RunningInstances = body.RunningInstances;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new NodeHeartbeatResponse(node.Name, options.Value.Nodes.HeartbeatSeconds));
    }

    private static async Task<Results<Created<JoinTokenResponse>, ProblemHttpResult>> CreateJoinTokenAsync(
        CreateJoinTokenRequest? body, AccessService access, PlatformDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins issue join tokens.");
        var errors = new Problems.Errors().Range("expiresInHours", body?.ExpiresInHours, 1, 24 * 7);
        if (errors.Any) return errors.ToProblem();
        var secret = TokenSecrets.NewSecret(TokenSecrets.JoinPrefix);
        var now = clock.GetUtcNow().UtcDateTime;
        var token = new NodeJoinToken
        {
            Hash = TokenSecrets.Hash(secret), CreatedBy = access.Caller.UserId, CreatedAt = now,
            ExpiresAt = now.AddHours(body?.ExpiresInHours ?? 24),
        };
        db.NodeJoinTokens.Add(token);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created("/api/v1/nodes", new JoinTokenResponse(secret, token.ExpiresAt));
    }

    private static async Task<Results<Ok<NodeJoinResponse>, ProblemHttpResult, UnauthorizedHttpResult>> JoinAsync(
        NodeJoinRequest body, HttpContext http, PlatformDbContext db, IOpenIddictApplicationManager apps,
        TimeProvider clock, CancellationToken ct)
    {
        var errors = new Problems.Errors().Name("name", body.Name);
        if (string.IsNullOrEmpty(body.JoinToken)) errors.Add("joinToken", "is required.");
        if (errors.Any) return errors.ToProblem();

        var now = clock.GetUtcNow().UtcDateTime;
        var hash = TokenSecrets.Hash(body.JoinToken!);
        // Spend the token atomically: of two agents racing with one token, exactly one wins.
        var spent = await db.NodeJoinTokens
            .Where(t => t.Hash == hash && t.UsedAt == null && t.ExpiresAt > now)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.UsedAt, now).SetProperty(t => t.UsedByNode, body.Name), ct);
        if (spent == 0) return TypedResults.Unauthorized();
        if (await db.Nodes.AnyAsync(n => n.Name == body.Name, ct))
            return Problems.Conflict("name", $"A node named '{body.Name}' has joined already.");

        var clientId = "node-" + body.Name;
        var secret = TokenSecrets.NewSecret("platnode_");
        await apps.CreateAsync(new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientSecret = secret,
            ClientType = ClientTypes.Confidential,
            DisplayName = "Node " + body.Name,
            Permissions = { Permissions.Endpoints.Token, Permissions.GrantTypes.ClientCredentials,
                Permissions.Prefixes.Scope + IdentitySetup.PlatformScope },
        }, ct);
        db.Nodes.Add(new Node { Name = body.Name!, ClientId = clientId, JoinedAt = now });
        await db.SaveChangesAsync(ct);
        var tokenEndpoint = $"{http.Request.Scheme}://{http.Request.Host}/connect/token";
        return TypedResults.Ok(new NodeJoinResponse(body.Name!, clientId, secret, tokenEndpoint));
    }
}
