using System.Collections.Frozen;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Domains;
using Platform.Data;

namespace Platform.Api.Routing;

/// <summary>
/// The certificates the router serves, by host (SNI): every custom domain that has one (uploaded or from ACME),
/// loaded from the database with the route table and rebuilt only for hosts whose row changed. Reads are a frozen
/// dictionary lookup, swapped atomically, so a renewal replaces a certificate between two handshakes.
/// </summary>
public sealed partial class TlsCertificates(Certificates certificates, ILogger<TlsCertificates> log)
{
    private sealed record Loaded(DateTime Version, SslStreamCertificateContext Context, DateTime NotAfter);

    private volatile FrozenDictionary<string, Loaded> _byHost = FrozenDictionary<string, Loaded>.Empty;

    /// <summary>What to present for <paramref name="host"/> (the SNI name), or null when the platform holds no certificate for it.</summary>
    public SslStreamCertificateContext? Find(string? host) =>
        host is not null && _byHost.TryGetValue(host.TrimEnd('.'), out var loaded) ? loaded.Context : null;

    /// <summary>Whether <paramref name="host"/> has a certificate (its app's HTTP may redirect to HTTPS).</summary>
    public bool Has(string host) => _byHost.ContainsKey(host);

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
    }

    private Loaded Load(DateTime version, string chainPem, string protectedKeyPem)
    {
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(chainPem);
        var leaf = certificates.Load(chainPem, protectedKeyPem);
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Count; i++) intermediates.Add(chain[i]);
        // offline: the chain as given is sent in every handshake; nothing is fetched to complete it.
        return new Loaded(version, SslStreamCertificateContext.Create(leaf, intermediates, offline: true), leaf.NotAfter.ToUniversalTime());
    }

    [LoggerMessage(EventId = 53, Level = LogLevel.Warning, Message = "The certificate of {Host} cannot be served ({Reason}); the previous one, if any, stays")]
    private static partial void LogUnusable(ILogger logger, string host, string reason);
}
