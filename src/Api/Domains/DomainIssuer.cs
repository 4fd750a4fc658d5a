using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;
using Platform.Host.Files;

namespace Platform.Api.Domains;

/// <summary>
/// Moves custom domains along (cert-manager's Certificate → Order → Challenge, as one readable state): a domain whose
/// <c>NextAttemptAt</c> has come is taken under a lease by one replica (a conditional update, so replicas never order
/// twice), ordered from the ACME directory, its http-01 challenge answered by every router through the
/// <c>acme_challenges</c> table, and its certificate stored (key protected) and served at once. Every step writes
/// the domain's message. A failure keeps a certificate already served and retries with back-off (1 min, doubling, at
/// most a day; a rate limit waits as long as the server asks). A certificate is renewed
/// <c>Platform:Acme:RenewBeforeDays</c> before it expires (a third of its life for short-lived ones).
/// A Hangfire job: <see cref="RunAsync"/> takes a domain's id and may run twice (the lease makes the second do nothing);
/// <see cref="SweepAsync"/> is the recurring pass that finds what is due and queues it.
/// </summary>
public sealed partial class DomainIssuer(
    PlatformDbContext db, Certificates certificates, ClusterSignals signals, IBackgroundJobClient jobs, IHttpClientFactory httpClients,
    DataLayout layout, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<DomainIssuer> log)
{
    public const string SweepJobId = "domains";
    public const string HttpClientName = "acme";
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(10);
    private static readonly string Holder = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>Queues an attempt at <paramref name="domain"/> now (after a claim): by id, the job reads the row.</summary>
    public void Enqueue(Guid domain) => jobs.Enqueue<DomainIssuer>(j => j.RunAsync(domain, CancellationToken.None));

    /// <summary>The recurring pass: every ACME domain whose next attempt has come (first order, retry, renewal).</summary>
    public async Task SweepAsync(CancellationToken ct)
    {
        if (options.Value.Acme.DirectoryUrl is null) return;
        var now = clock.GetUtcNow().UtcDateTime;
        var due = await db.CustomDomains.AsNoTracking()
            .Where(d => d.Source == "acme" && d.NextAttemptAt != null && d.NextAttemptAt <= now && (d.LeaseUntil == null || d.LeaseUntil < now))
            .OrderBy(d => d.NextAttemptAt).Select(d => d.Id).Take(100).ToListAsync(ct);
        // A job each, so one slow order does not hold up the rest (nor this pass); the lease makes a duplicate do nothing.
        foreach (var id in due) Enqueue(id);
    }

    public async Task RunAsync(Guid domainId, CancellationToken ct)
    {
        var o = options.Value;
        if (o.Acme.DirectoryUrl is null) return;
        var now = clock.GetUtcNow().UtcDateTime;
        var taken = await db.CustomDomains
            .Where(d => d.Id == domainId && d.Source == "acme" && d.NextAttemptAt != null && d.NextAttemptAt <= now && (d.LeaseUntil == null || d.LeaseUntil < now))
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.LeaseHolder, Holder).SetProperty(d => d.LeaseUntil, now + Lease), ct);
        if (taken == 0) return;   // not due, gone, or another replica holds it
        var domain = await db.CustomDomains.AsNoTracking().FirstAsync(d => d.Id == domainId, ct);
        var renewing = domain.CertificatePem is not null;

        async Task SayAsync(string message) =>
            await db.CustomDomains.Where(d => d.Id == domainId && d.LeaseHolder == Holder).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.State, d => renewing ? d.State : DomainStates.Issuing)
                .SetProperty(d => d.Message, Trim((renewing ? "renewing: " : "") + message))
                .SetProperty(d => d.UpdatedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);

        try
        {
            using var http = httpClients.CreateClient(HttpClientName);
            using var key = await AccountKeyAsync(ct);
            var client = new AcmeClient(http, new Uri(o.Acme.DirectoryUrl), key, o.Acme.Email, clock);
            var (chain, keyPem) = await client.IssueAsync(domain.Host,
                async (token, keyAuthorization) =>
                {
                    await db.AcmeChallenges.Where(c => c.Token == token).ExecuteDeleteAsync(ct);
                    db.AcmeChallenges.Add(new AcmeChallenge { Token = token, KeyAuthorization = keyAuthorization, Host = domain.Host, ExpiresAt = clock.GetUtcNow().UtcDateTime.AddHours(1) });
                    await db.SaveChangesAsync(ct);
                },
                SayAsync, TimeSpan.FromMinutes(5), ct);
            using var leaf = X509Certificate2.CreateFromPem(chain);
            var (notBefore, notAfter) = (leaf.NotBefore.ToUniversalTime(), leaf.NotAfter.ToUniversalTime());
            var renewAt = notAfter.AddDays(-o.Acme.RenewBeforeDays);
            if (renewAt <= notBefore + (notAfter - notBefore) / 2) renewAt = notBefore + (notAfter - notBefore) * 2 / 3;   // short-lived certificates
            var issuer = leaf.GetNameInfo(X509NameType.SimpleName, forIssuer: true);
            var done = clock.GetUtcNow().UtcDateTime;
            await db.CustomDomains.Where(d => d.Id == domainId && d.LeaseHolder == Holder).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.CertificatePem, chain).SetProperty(d => d.KeyPem, certificates.Protect(keyPem))
                .SetProperty(d => d.NotAfter, notAfter).SetProperty(d => d.State, DomainStates.Ready)
                .SetProperty(d => d.Message, Trim($"certificate issued by {issuer}, valid until {notAfter:u}"))
                .SetProperty(d => d.Failures, 0).SetProperty(d => d.NextAttemptAt, renewAt)
                .SetProperty(d => d.LeaseHolder, (string?)null).SetProperty(d => d.LeaseUntil, (DateTime?)null)
                .SetProperty(d => d.UpdatedAt, done), CancellationToken.None);
            LogIssued(log, domain.Host, issuer, notAfter);
        }
        catch (Exception e) when (e is AcmeException or HttpRequestException or TaskCanceledException or CryptographicException or IOException)
        {
            if (e is TaskCanceledException && ct.IsCancellationRequested) throw;
            var failures = domain.Failures + 1;
            var (reason, wait) = e switch
            {
                AcmeException { RateLimited: true } a => ($"ACME rate limit: {a.Detail}", a.RetryAfter ?? TimeSpan.FromHours(1)),
                AcmeException a => ($"ACME: {a.Detail}", Backoff(failures)),
                _ => ($"The ACME directory could not be reached: {e.Message}", Backoff(failures)),
            };
            var retry = clock.GetUtcNow().UtcDateTime + wait;
            await db.CustomDomains.Where(d => d.Id == domainId && d.LeaseHolder == Holder).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.State, renewing ? DomainStates.Ready : DomainStates.Failed)
                .SetProperty(d => d.Message, Trim((renewing ? "renewal failed, the current certificate stays: " : "") + reason + $" (attempt {failures}; next at {retry:u})"))
                .SetProperty(d => d.Failures, failures).SetProperty(d => d.NextAttemptAt, retry)
                .SetProperty(d => d.LeaseHolder, (string?)null).SetProperty(d => d.LeaseUntil, (DateTime?)null)
                .SetProperty(d => d.UpdatedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
            LogFailed(log, domain.Host, reason);
        }
        finally
        {
            await db.AcmeChallenges.Where(c => c.Host == domain.Host).ExecuteDeleteAsync(CancellationToken.None);
        }
        await signals.RoutesChangedAsync(db, CancellationToken.None);
    }

    /// <summary>1 minute after the first failure, doubling, at most a day.</summary>
    public static TimeSpan Backoff(int failures) => TimeSpan.FromMinutes(Math.Min(24 * 60, Math.Pow(2, Math.Min(failures - 1, 11))));

    /// <summary>The ACME account key (ECDSA P-256), made once and kept 0600 under the data folder's keys (shared by replicas).</summary>
    private async Task<ECDsa> AccountKeyAsync(CancellationToken ct)
    {
        var path = Path.Combine(layout.Keys, "acme-account.pem");
        var key = ECDsa.Create();
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(layout.Keys);
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            await PrivateFile.WriteAllTextAsync(path, fresh.ExportPkcs8PrivateKeyPem(), ct);
        }
        key.ImportFromPem(await File.ReadAllTextAsync(path, ct));
        return key;
    }

    private static string Trim(string s) => s.Length > 2000 ? s[..2000] : s;

    [LoggerMessage(EventId = 90, Level = LogLevel.Information, Message = "Certificate for {Host} issued by {Issuer}, valid until {NotAfter:u}")]
    private static partial void LogIssued(ILogger logger, string host, string issuer, DateTime notAfter);

    [LoggerMessage(EventId = 91, Level = LogLevel.Warning, Message = "Certificate for {Host} not issued: {Reason}")]
    private static partial void LogFailed(ILogger logger, string host, string reason);
}
