using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using OpenIddict.Abstractions;
using Platform.Api.Access;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Nodes;

/// <summary>
/// Cluster membership. A platform admin issues a one-time join token; an agent exchanges it once for
/// its own OIDC client (client credentials), which it then uses for everything else. The node's address
/// is fixed at join; a platform admin can remove (revoke) a node. A node may be compromised: it reports
/// only about itself (its own instances, its own address) and everything it sends is bounded.
/// </summary>
public static class NodesApi
{
    public static RouteGroupBuilder MapNodesApi(this RouteGroupBuilder api)
    {
        api.MapGet("/nodes", ListAsync).WithName("nodes.list");
        api.MapPost("/nodes/join-tokens", CreateJoinTokenAsync).WithName("nodes.join-tokens.create");
        api.MapDelete("/nodes/{node}", RevokeAsync).WithName("nodes.delete");
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
        agents.MapGet("/nodes/desired", DesiredAsync).WithName("nodes.desired");
        agents.MapPost("/nodes/status", StatusAsync).WithName("nodes.status");
        return agents;
    }

    /// <summary>
    /// The joined node behind a request, or why it is refused: people get 403; a machine client whose
    /// node is gone (a platform admin removed it) gets 403 <see cref="ProblemTypes.NodeRevoked"/>, so its
    /// agent knows to stop rather than retry. Read on every request: a removal takes effect at once,
    /// whatever access token the node still holds.
    /// </summary>
    private static async Task<Resolved<Node>> CallingNodeAsync(HttpContext http, PlatformDbContext db, string refusal, CancellationToken ct)
    {
        var clientId = http.User.FindFirst(Claims.Subject)?.Value;
        if (http.User.FindFirst("client_kind")?.Value != "machine" || clientId is null)
            return Problems.Forbidden(refusal);
        return await db.Nodes.FirstOrDefaultAsync(n => n.ClientId == clientId, ct) is { } node ? node : Revoked();
    }

    private static ProblemHttpResult Revoked() => TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden,
        type: ProblemTypes.NodeRevoked, title: "The node was removed from the cluster.",
        detail: "A platform admin removed this node: its instances run elsewhere. Join it again with a new join token.");

    /// <summary>
    /// The node's desired instances as a snapshot. With <c>revision</c> (the one the agent has), the
    /// call is a long-poll: it answers as soon as the node's revision moves past it, or with 304 after
    /// Platform:Nodes:LongPollSeconds.
    /// </summary>
    private static async Task<IResult> DesiredAsync(
        long? revision, HttpContext http, PlatformDbContext db, ClusterSignals signals,
        Microsoft.Extensions.Options.IOptions<PlatformOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var (node, refused) = await CallingNodeAsync(http, db, "Only joined node agents read desired state.", ct);
        if (node is null) return refused!;
        var deadline = clock.GetUtcNow().AddSeconds(options.Value.Nodes.LongPollSeconds);
        while (true)
        {
            var changed = signals.NodeChanged(node.Id);   // taken before reading, so no change slips between
            var current = await db.Nodes.AsNoTracking().Where(n => n.Id == node.Id).Select(n => (long?)n.Revision).FirstOrDefaultAsync(ct);
            if (current is null) return Revoked();   // removed while this poll waited
            if (revision is null || current != revision) return TypedResults.Ok(await SnapshotAsync(db, node.Id, ct));
            var left = deadline - clock.GetUtcNow();
            if (left <= TimeSpan.Zero) return TypedResults.StatusCode(StatusCodes.Status304NotModified);
            // Waits for this replica's signal (or another's, relayed by PostgresListener); a slow
            // re-read every 5 s covers a lost notification.
            try { await changed.WaitAsync(TimeSpan.FromSeconds(Math.Min(5, left.TotalSeconds)), clock, ct); }
            catch (TimeoutException) { }
        }
    }

    /// <summary>Revision first, then the rows: a concurrent change yields a newer revision next time, never a lost one.</summary>
    public static async Task<DesiredState> SnapshotAsync(PlatformDbContext db, Guid nodeId, CancellationToken ct)
    {
        var revision = await db.Nodes.AsNoTracking().Where(n => n.Id == nodeId).Select(n => n.Revision).FirstAsync(ct);
        var rows = await db.Instances.AsNoTracking().Where(i => i.NodeId == nodeId)
            .Select(i => new
            {
                i.Id, Team = i.App!.Project!.Team!.Name, Project = i.App.Project.Name, i.App.ProjectId, App = i.App.Name, i.Generation,
                i.ImageRepository, i.ImageDigest, i.App.Env, i.App.Port, i.MemoryMiB, i.CpuMillicores,
                i.App.ReadinessProbe, i.App.LivenessProbe, i.App.HealthCheckPath, i.App.StopGraceSeconds,
            }).ToListAsync(ct);
        return new DesiredState(revision, rows.OrderBy(r => r.Id).Select(r => new DesiredInstance(
            r.Id, r.Team, r.Project, r.ProjectId, r.App, r.Generation, $"{r.ImageRepository}@{r.ImageDigest}",
            r.Env, r.Port, r.MemoryMiB, r.CpuMillicores, Apps.Probes.Readiness(r.ReadinessProbe, r.HealthCheckPath),
            Apps.Probes.Liveness(r.LivenessProbe, r.HealthCheckPath), r.StopGraceSeconds)).ToList());
    }

    /// <summary>What the agent observes of its instances; rows of other nodes and removed instances are ignored.</summary>
    private static async Task<Results<NoContent, ProblemHttpResult>> StatusAsync(
        NodeStatusReport body, HttpContext http, PlatformDbContext db, ClusterSignals signals, PlacementService placement,
        TimeProvider clock, CancellationToken ct)
    {
        var (node, refused) = await CallingNodeAsync(http, db, "Only joined node agents report instance status.", ct);
        if (node is null) return refused!;
        var errors = new Problems.Errors();
        if (body.Instances is null) errors.Add("instances", "is required.");
        else if (body.Instances.Count > 10_000) errors.Add("instances", "must have at most 10000 entries.");
        else
        {
            foreach (var (r, n) in body.Instances.Select((r, n) => (r, n)))
            {
                if (r is null) { errors.Add($"instances[{n}]", "is required."); continue; }
                if (!InstanceStates.All.Contains(r.State ?? "")) errors.Add($"instances[{n}].state", $"must be one of {string.Join(", ", InstanceStates.All)}.");
                errors.Range($"instances[{n}].restarts", r.Restarts, 0, int.MaxValue).Range($"instances[{n}].hostPort", r.HostPort, 1, 65535)
                    .Range($"instances[{n}].usedCpuMillicores", r.UsedCpuMillicores, 0, Quantities.MaxQuota)
                    .Range($"instances[{n}].usedMemoryBytes", r.UsedMemoryBytes, 0, long.MaxValue);
                if (r.Reason is { Length: > 64 }) errors.Add($"instances[{n}].reason", "must be at most 64 characters.");
            }
        }
        if (errors.Any) return errors.ToProblem();

        var reports = body.Instances!.GroupBy(r => r.Id).ToDictionary(g => g.Key, g => g.Last());
        var ids = reports.Keys.ToList();
        // Only this node's own rows: a report about another node's instance (or a removed one) changes nothing.
        var rows = await db.Instances.Where(i => i.NodeId == node.Id && ids.Contains(i.Id)).ToListAsync(ct);
        var now = clock.GetUtcNow().UtcDateTime;
        var routesChanged = false;
        var rollouts = new HashSet<Guid>();
        foreach (var row in rows)
        {
            var r = reports[row.Id];
            var wasReady = row.State == InstanceStates.Ready;
            if (wasReady != (r.State == InstanceStates.Ready) || (r.State == InstanceStates.Ready && row.HostPort != r.HostPort))
            {
                routesChanged = true;
                rollouts.Add(row.AppId);
            }
            Rollouts.AppEvents.OfReport(db, row, r, now);
            row.State = r.State;
            row.Restarts = r.Restarts;
            row.ExitCode = r.ExitCode;
            row.Reason = r.Reason;
            row.Message = r.Message is { Length: > 1024 } m ? m[..1024] : r.Message;
            row.HostPort = r.HostPort;
            row.StartedAt = r.StartedAt;
            row.UsedCpuMillicores = r.UsedCpuMillicores;
            row.UsedMemoryBytes = r.UsedMemoryBytes;
            row.UpdatedAt = now;
        }
        await db.SaveChangesAsync(ct);
        if (routesChanged)
        {
            await signals.RoutesChangedAsync(db, ct);
            // An instance started or stopped running: a rollout may be complete, or a replica lost.
            await placement.TryReconcileAsync(rollouts, ct);
        }
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<NodeHeartbeatResponse>, ProblemHttpResult>> HeartbeatAsync(
        NodeHeartbeat body, HttpContext http, PlatformDbContext db, NodeControlKeys keys, TimeProvider clock,
        Microsoft.Extensions.Options.IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var (node, refused) = await CallingNodeAsync(http, db, "Only joined node agents send heartbeats.", ct);
        if (node is null) return refused!;
        var errors = new Problems.Errors();
        if (body.Capacity is null) errors.Add("capacity", "is required.");
        foreach (var (field, r) in new[] { ("capacity", body.Capacity), ("allocatable", body.Allocatable), ("used", body.Used) })
            if (r is not null)
                errors.Range(field + ".memoryMiB", r.MemoryMiB, 0, Quantities.MaxQuota).Range(field + ".cpuMillicores", r.CpuMillicores, 0, Quantities.MaxQuota);
        errors.Range("runningInstances", body.RunningInstances, 0, 100_000);
        if (body.Address is not null) errors.Add("address", NodeAddresses.Validate(body.Address));
        if (body.AgentVersion is { Length: > 64 }) errors.Add("agentVersion", "must be at most 64 characters.");
        errors.Range("controlPort", body.ControlPort, 1, 65535);
        if (body.ControlKey is { } key && (key.Length is < 32 or > 128 || key.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_')))
            errors.Add("controlKey", "must be 32 to 128 URL-safe characters.");
        if (errors.Any) return errors.ToProblem();

        // The address is the node's identity for the router and the Api: fixed at join, never moved by a
        // heartbeat (a compromised node must not draw another address's traffic to itself).
        if (body.Address is { } address && node.Address is { } joinedAt && !NodeAddresses.Same(address, joinedAt))
            return Problems.Conflict("address", $"is fixed at join ({joinedAt}); a node cannot move. Remove the node and join it again.",
                "The node's address is fixed.");
        if (node.Address is null && body.Address is { } first)
        {
            // Nodes that joined before addresses were fixed at join: their first heartbeat fixes it, if no other node has it.
            if (await NodeAddresses.TakenAsync(db, first, node.Id, ct))
                return Problems.Conflict("address", "is the address of another node.", "The address is taken.");
            node.Address = first;
        }

        node.LastHeartbeatAt = clock.GetUtcNow().UtcDateTime;
        node.AgentVersion = body.AgentVersion;
        (node.CapacityMemoryMiB, node.CapacityCpuMillicores) = (body.Capacity!.MemoryMiB, body.Capacity.CpuMillicores);
        var allocatable = body.Allocatable ?? body.Capacity;
        (node.AllocatableMemoryMiB, node.AllocatableCpuMillicores) = (allocatable.MemoryMiB, allocatable.CpuMillicores);
        (node.UsedMemoryMiB, node.UsedCpuMillicores) = body.Used is { } u ? (u.MemoryMiB, u.CpuMillicores) : (0L, 0L);
        node.RunningInstances = body.RunningInstances;
        node.ControlPort = body.ControlPort;
        node.ProtectedControlKey = body.ControlKey is null ? null : keys.Protect(body.ControlKey);
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

    /// <summary>
    /// Removes a node from the cluster (a platform admin's call, e.g. for a node that may be compromised):
    /// its OIDC client goes with its tokens, so the token endpoint refuses its credentials; its row goes,
    /// so every node endpoint refuses even an access token it still holds (403 node-revoked) and the
    /// registry lets it pull nothing; its instance rows go, so the router stops sending it traffic and the
    /// placement puts the replicas on other nodes. Idempotent in effect: a second call is a 404.
    /// </summary>
    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeAsync(
        string node, AccessService access, PlatformDbContext db, IOpenIddictApplicationManager apps, ClusterSignals signals,
        PlacementService placement, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins remove nodes.");
        var row = Names.IsDns1123Label(node) ? await db.Nodes.FirstOrDefaultAsync(n => n.Name == node, ct) : null;
        if (row is null) return Problems.NotFound($"Node '{node}'");
        var affected = await db.Instances.Where(i => i.NodeId == row.Id).Select(i => i.AppId).Distinct().ToListAsync(ct);
        // Credentials first: should the rest fail, the node can no longer get a token, and a retry finishes the job.
        if (await apps.FindByClientIdAsync(row.ClientId, ct) is { } client)
            await apps.DeleteAsync(client, ct);   // OpenIddict deletes the client's tokens and authorisations with it
        // The instance rows go with the node (cascade). A placement pass running now that still saw the node
        // Ready fails on the missing node and the next pass, seconds later, places without it.
        db.Nodes.Remove(row);
        await db.SaveChangesAsync(ct);
        await signals.RoutesChangedAsync(db, ct);
        await placement.TryReconcileAsync(affected, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<NodeJoinResponse>, ProblemHttpResult, UnauthorizedHttpResult>> JoinAsync(
        NodeJoinRequest body, HttpContext http, PlatformDbContext db, IOpenIddictApplicationManager apps,
        TimeProvider clock, CancellationToken ct)
    {
        var errors = new Problems.Errors().Name("name", body.Name);
        if (string.IsNullOrEmpty(body.JoinToken)) errors.Add("joinToken", "is required.");
        errors.Add("address", body.Address is null ? "is required: where the router and the Api reach this node (fixed from now on)." : NodeAddresses.Validate(body.Address));
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
        if (await NodeAddresses.TakenAsync(db, body.Address!, null, ct))
            return Problems.Conflict("address", $"Another node has the address '{body.Address}'.", "The address is taken.");

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
        db.Nodes.Add(new Node { Name = body.Name!, ClientId = clientId, JoinedAt = now, Address = body.Address });
        await db.SaveChangesAsync(ct);
        var tokenEndpoint = $"{http.Request.Scheme}://{http.Request.Host}/connect/token";
        return TypedResults.Ok(new NodeJoinResponse(body.Name!, clientId, secret, tokenEndpoint));
    }
}
