using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Routing;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Domains;

/// <summary>
/// An app's custom domains: developers of the project claim and release hosts, viewers list them; a host belongs to
/// one app platform-wide (a claim on a host another app holds is 409 without saying whose). Platform admins may limit
/// the suffixes a team claims. A claim without a certificate is issued through ACME by the domain issuer.
/// </summary>
public static class DomainsApi
{
    public static RouteGroupBuilder MapDomainsApi(this RouteGroupBuilder api)
    {
        const string domains = "/teams/{team}/projects/{project}/apps/{app}/domains";
        api.MapGet(domains, ListAsync).WithName("domains.list");
        api.MapPut(domains + "/{host}", PutAsync).WithName("domains.put");
        api.MapDelete(domains + "/{host}", DeleteAsync).WithName("domains.delete");
        api.MapGet("/teams/{team}/domain-suffixes", GetSuffixesAsync).WithName("teams.domainSuffixes.get");
        api.MapPut("/teams/{team}/domain-suffixes", PutSuffixesAsync).WithName("teams.domainSuffixes.put");
        return api;
    }

    private static async Task<Results<Ok<Page<DomainResponse>>, ProblemHttpResult>> ListAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var rows = await db.CustomDomains.AsNoTracking().Where(d => d.AppId == a!.Id).OrderBy(d => d.Host).ToListAsync(ct);
        return TypedResults.Ok(new Page<DomainResponse>(rows.Select(d => ToResponse(d, a!, team, project, options.Value)).ToList(), null));
    }

    private static async Task<Results<Ok<DomainResponse>, Created<DomainResponse>, ProblemHttpResult>> PutAsync(
        string team, string project, string app, string host, PutDomainRequest? body, AccessService access, PlatformDbContext db,
        Certificates certificates, DomainIssuer issuer, ClusterSignals signals, IOptions<PlatformOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var (a, scope, problem) = await access.AppAsync(team, project, app, Permission.AppWrite, ct);
        if (problem is not null) return problem;
        var o = options.Value;
        host = DomainNames.Normalize(host);
        var errors = new Problems.Errors();
        errors.Add("host", DomainNames.Validate(host, o.Ingress.Domain));
        if (errors.Any) return errors.ToProblem();
        var suffixes = await db.Teams.AsNoTracking().Where(t => t.Id == scope!.Access.Team.Id).Select(t => t.DomainSuffixes).FirstAsync(ct);
        if (!DomainNames.Allowed(host, suffixes))
            return Problems.Validation("host", $"is not within the suffixes team {team} may claim ({string.Join(", ", suffixes)}); a platform admin sets them.");
        (string Chain, DateTime NotAfter)? uploaded = null;
        if (body?.Certificate is { } upload)
        {
            uploaded = certificates.Check(upload, host, "certificate", errors);
            if (errors.Any) return errors.ToProblem();
        }

        var now = clock.GetUtcNow().UtcDateTime;
        var existing = await db.CustomDomains.FirstOrDefaultAsync(d => d.Host == host, ct);
        if (existing is not null && existing.AppId != a!.Id)
            return Problems.Conflict("host", $"{host} is held by another app on this platform.", "The host is taken.");
        var created = existing is null;
        if (created && await db.CustomDomains.CountAsync(d => d.AppId == a!.Id, ct) >= o.Domains.MaxPerApp)
            return Problems.Validation("host", $"app {app} holds {o.Domains.MaxPerApp} domains already, the most an app may hold.");
        var domain = existing ?? new CustomDomain { Id = Guid.CreateVersion7(), AppId = a!.Id, Host = host, CreatedAt = now, CreatedBy = access.Caller.Email };
        domain.UpdatedAt = now;
        if (uploaded is { } u)
        {
            (domain.Source, domain.CertificatePem, domain.KeyPem, domain.NotAfter) = ("uploaded", u.Chain, certificates.Protect(body!.Certificate!.KeyPem!), u.NotAfter);
            (domain.State, domain.Message, domain.NextAttemptAt, domain.Failures) = (DomainStates.Ready, "serving the uploaded certificate", null, 0);
        }
        else if (created || domain.Source == "uploaded" || domain.State == DomainStates.Failed)
        {
            // ACME: a new claim, a switch from an uploaded certificate, or a retry asked for after a failure.
            domain.Source = "acme";
            if (domain.CertificatePem is null || domain.State == DomainStates.Failed) domain.State = DomainStates.Pending;
            domain.Failures = 0;
            domain.NextAttemptAt = o.Acme.DirectoryUrl is null ? null : now;
            domain.Message = o.Acme.DirectoryUrl is null
                ? "No ACME directory is configured on this platform: upload a certificate for this host (PUT with certificate), or ask an operator to set Platform__Acme__DirectoryUrl. The host is served over HTTP meanwhile."
                : "waiting for the first ACME order";
        }
        if (created) db.CustomDomains.Add(domain);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (ProblemExceptionHandler.IsUniqueViolation(e))
        {
            return Problems.Conflict("host", $"{host} is held by another app on this platform.", "The host is taken.");
        }
        await signals.RoutesChangedAsync(db, ct);
        if (domain.Source == "acme" && domain.NextAttemptAt is not null) issuer.Enqueue(domain.Id);
        var response = ToResponse(domain, a!, team, project, o);
        return created ? TypedResults.Created($"/api/v1/teams/{team}/projects/{project}/apps/{app}/domains/{host}", response) : TypedResults.Ok(response);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string team, string project, string app, string host, AccessService access, PlatformDbContext db, ClusterSignals signals, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppWrite, ct);
        if (problem is not null) return problem;
        host = DomainNames.Normalize(host);
        var removed = await db.CustomDomains.Where(d => d.AppId == a!.Id && d.Host == host).ExecuteDeleteAsync(ct);
        if (removed == 0) return Problems.NotFound($"Domain '{host}' of app '{app}'");
        await db.AcmeChallenges.Where(c => c.Host == host).ExecuteDeleteAsync(ct);
        await signals.RoutesChangedAsync(db, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<DomainSuffixesResponse>, ProblemHttpResult>> GetSuffixesAsync(string team, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamRead, ct);
        if (t.Problem is { } p) return p;
        var suffixes = await db.Teams.AsNoTracking().Where(x => x.Id == t.Value!.Team.Id).Select(x => x.DomainSuffixes).FirstAsync(ct);
        return TypedResults.Ok(new DomainSuffixesResponse(suffixes));
    }

    private static async Task<Results<Ok<DomainSuffixesResponse>, ProblemHttpResult>> PutSuffixesAsync(
        string team, DomainSuffixesRequest body, AccessService access, PlatformDbContext db, IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var t = await access.TeamAsync(team, Permission.TeamQuotaWrite, ct);
        if (t.Problem is { } p) return p;
        var errors = new Problems.Errors();
        var suffixes = (body.Suffixes ?? []).Select(DomainNames.Normalize).Distinct().ToList();
        if (suffixes.Count > 100) errors.Add("suffixes", "must list at most 100 suffixes.");
        for (var i = 0; i < suffixes.Count && i < 100; i++)
            errors.Add($"suffixes[{i}]", DomainNames.Validate(suffixes[i], options.Value.Ingress.Domain));
        if (errors.Any) return errors.ToProblem();
        var row = await db.Teams.FirstAsync(x => x.Id == t.Value!.Team.Id, ct);
        row.DomainSuffixes = suffixes;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new DomainSuffixesResponse(suffixes));
    }

    public static DomainResponse ToResponse(CustomDomain d, App a, string team, string project, PlatformOptions o) =>
        new(d.Host, d.State, d.Message, d.Source, d.NotAfter,
            d.Source == "acme" && d.NotAfter is { } end ? end.AddDays(-o.Acme.RenewBeforeDays) : null,
            $"{d.Host}. CNAME {RouteTable.HostOf(a.Name, project, team, o.Ingress.Domain)}. (for a zone apex, an A record to the router's address)",
            d.CreatedAt, d.UpdatedAt);
}
