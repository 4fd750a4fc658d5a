using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Domains;

/// <summary>
/// The apps domain's certificate (platform admins): a wildcard for <c>*.{Platform:Ingress:Domain}</c> uploaded as PEM,
/// checked like a domain's (key, names, validity), served by the router for every app host that has no custom
/// certificate, so every app gets HTTPS without an ACME order each (http-01 cannot issue wildcards).
/// </summary>
public static class IngressCertificateApi
{
    public static RouteGroupBuilder MapIngressCertificateApi(this RouteGroupBuilder api)
    {
        api.MapGet("/ingress/certificate", GetAsync).WithName("ingress.certificate.get");
        api.MapPut("/ingress/certificate", PutAsync).WithName("ingress.certificate.put");
        api.MapDelete("/ingress/certificate", DeleteAsync).WithName("ingress.certificate.delete");
        return api;
    }

    private static async Task<Results<Ok<IngressCertificateResponse>, ProblemHttpResult>> GetAsync(AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins manage the apps domain's certificate.");
        var row = await db.IngressCertificates.AsNoTracking().FirstOrDefaultAsync(c => c.Id == IngressCertificate.Apps, ct);
        return row is null ? Problems.NotFound("The apps domain's certificate") : TypedResults.Ok(ToResponse(row));
    }

    private static async Task<Results<Ok<IngressCertificateResponse>, ProblemHttpResult>> PutAsync(
        UploadedCertificate body, AccessService access, PlatformDbContext db, Certificates certificates, ClusterSignals signals,
        IOptions<PlatformOptions> options, TimeProvider clock, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins manage the apps domain's certificate.");
        var errors = new Problems.Errors();
        // Any one app host stands for all: the certificate must cover a name one label below the apps domain.
        var probe = "app." + DomainNames.Normalize(options.Value.Ingress.Domain);
        var checkedChain = certificates.Check(body, probe, "certificate", errors);
        if (checkedChain is not { } ok) return errors.ToProblem();
        var row = await db.IngressCertificates.FirstOrDefaultAsync(c => c.Id == IngressCertificate.Apps, ct);
        if (row is null) db.IngressCertificates.Add(row = new IngressCertificate { Id = IngressCertificate.Apps, CertificatePem = "", KeyPem = "" });
        (row.CertificatePem, row.KeyPem, row.NotAfter, row.UpdatedAt) = (ok.ChainPem, certificates.Protect(body.KeyPem!), ok.NotAfter, clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        await signals.RoutesChangedAsync(db, ct);
        return TypedResults.Ok(ToResponse(row));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(AccessService access, PlatformDbContext db, ClusterSignals signals, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins manage the apps domain's certificate.");
        if (await db.IngressCertificates.Where(c => c.Id == IngressCertificate.Apps).ExecuteDeleteAsync(ct) == 0) return Problems.NotFound("The apps domain's certificate");
        await signals.RoutesChangedAsync(db, ct);
        return TypedResults.NoContent();
    }

    private static IngressCertificateResponse ToResponse(IngressCertificate row)
    {
        using var leaf = X509Certificate2.CreateFromPem(row.CertificatePem);
        return new IngressCertificateResponse(Certificates.Names(leaf), row.NotAfter, row.UpdatedAt);
    }
}
