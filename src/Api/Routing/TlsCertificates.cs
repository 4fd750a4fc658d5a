using System.Collections.Frozen;
using System.Net.Security;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Domains;
using Platform.Data;

namespace Platform.Api.Routing;

/// <summary>
/// The certificates the router serves, by host (SNI): every custom domain that has one (uploaded or from ACME), and
/// for the app hosts one label below the apps domain the wildcard a platform admin uploaded; loaded from the database
/// with the route table and rebuilt only for rows that changed. Reads are a frozen dictionary lookup (and one field),
/// swapped atomically, so a renewal replaces a certificate between two handshakes.
/// </summary>
public sealed partial class TlsCertificates(Certificates certificates, Microsoft.Extensions.Options.IOptions<Platform.Api.Infrastructure.PlatformOptions> options,
    ILogger<TlsCertificates> log)
{
    private readonly string _appsSuffix = "." + Platform.Contracts.DomainNames.Normalize(options.Value.Ingress.Domain);
    private volatile Loaded? _apps;
    private sealed record Loaded(DateTime Version, SslStreamCertificateContext Context);

    private volatile FrozenDictionary<string, Loaded> _byHost = FrozenDictionary<string, Loaded>.Empty;

    /// <summary>What to present for <paramref name="host"/> (the SNI name), or null when the platform holds no certificate for it.</summary>
    public SslStreamCertificateContext? Find(string? host)
    {
        if (host is null) return null;
        host = host.TrimEnd('.');
        return _byHost.TryGetValue(host, out var loaded) ? loaded.Context : UnderApps(host) ? _apps?.Context : null;
    }

    /// <summary>Whether <paramref name="host"/> has a certificate (its app's HTTP may redirect to HTTPS).</summary>
    public bool Has(string host) => _byHost.ContainsKey(host) || _apps is not null && UnderApps(host);

    /// <summary>One label below the apps domain (what a wildcard covers).</summary>
    private bool UnderApps(string host) =>
        host.Length > _appsSuffix.Length && host.EndsWith(_appsSuffix, StringComparison.OrdinalIgnoreCase) && host.IndexOf('.') == host.Length - _appsSuffix.Length;

    /// <summary>Reloads what changed since the last call (inside the route table's refresh).</summary>
    public async Task RefreshAsync(PlatformDbContext db, CancellationToken ct)
    {
        var rows = await db.CustomDomains.AsNoTracking().Where(d => d.CertificatePem != null && d.KeyPem != null)
            .Select(d => new { d.Host, d.UpdatedAt }).ToListAsync(ct);
        var old = _byHost;
        var next = new Dictionary<string, Loaded>(StringComparer.OrdinalIgnoreCase);
        var changed = rows.Where(r => !old.TryGetValue(r.Host, out var l) || l.Version != r.UpdatedAt).Select(r => r.Host).ToList();
        foreach (var row in rows)
            if (old.TryGetValue(row.Host, out var kept) && kept.Version == row.UpdatedAt) next[row.Host] = kept;
        foreach (var chunk in changed.Chunk(100))
        {
            var full = await db.CustomDomains.AsNoTracking().Where(d => chunk.Contains(d.Host) && d.CertificatePem != null && d.KeyPem != null)
                .Select(d => new { d.Host, d.UpdatedAt, d.CertificatePem, d.KeyPem }).ToListAsync(ct);
            foreach (var d in full)
            {
                try
                {
                    next[d.Host] = Load(d.UpdatedAt, d.CertificatePem!, d.KeyPem!);
                }
                catch (Exception e) when (e is CryptographicException or ArgumentException)
                {
                    LogUnusable(log, d.Host, e.Message);
                    if (old.TryGetValue(d.Host, out var previous)) next[d.Host] = previous;   // keep serving what worked
                }
            }
        }
        if (changed.Count > 0 || next.Count != old.Count)
            _byHost = next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

        var apps = await db.IngressCertificates.AsNoTracking().Where(c => c.Id == IngressCertificate.Apps).Select(c => new { c.UpdatedAt }).FirstOrDefaultAsync(ct);
        if (apps is null) _apps = null;
        else if (_apps?.Version != apps.UpdatedAt)
        {
            var row = await db.IngressCertificates.AsNoTracking().FirstAsync(c => c.Id == IngressCertificate.Apps, ct);
            try
            {
                _apps = Load(row.UpdatedAt, row.CertificatePem, row.KeyPem);
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
                LogUnusable(log, "*" + _appsSuffix, e.Message);
            }
        }
    }

    private Loaded Load(DateTime version, string chainPem, string protectedKeyPem) => new(version, certificates.Load(chainPem, protectedKeyPem));

    [LoggerMessage(EventId = 53, Level = LogLevel.Warning, Message = "The certificate of {Host} cannot be served ({Reason}); the previous one, if any, stays")]
    private static partial void LogUnusable(ILogger logger, string host, string reason);
}
