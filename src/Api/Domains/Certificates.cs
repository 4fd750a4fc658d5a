using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.DataProtection;
using Platform.Api.Infrastructure;
using Platform.Contracts;

namespace Platform.Api.Domains;

/// <summary>
/// Certificates as the platform keeps them: a PEM chain (leaf first) and its key, the key protected with the Api's
/// data-protection keys at rest; checked before they are taken (an upload), and turned into what Kestrel serves.
/// </summary>
public sealed class Certificates(IDataProtectionProvider protection, TimeProvider clock)
{
    public const int MaxChainPemChars = 64 * 1024;
    public const int MaxKeyPemChars = 16 * 1024;

    private readonly IDataProtector _protector = protection.CreateProtector("Platform.Domains.Key.v1");

    public string Protect(string keyPem) => _protector.Protect(keyPem);

    public string Unprotect(string protectedKeyPem) => _protector.Unprotect(protectedKeyPem);

    /// <summary>An uploaded certificate that may be served for <paramref name="host"/>: the chain normalized and its leaf's expiry, or the errors naming the field.</summary>
    public (string ChainPem, DateTime NotAfter)? Check(UploadedCertificate upload, string host, string field, Problems.Errors errors)
    {
        if (string.IsNullOrWhiteSpace(upload.ChainPem)) errors.Add(field + ".chainPem", "is required: the certificate chain in PEM, the host's certificate first.");
        else if (upload.ChainPem.Length > MaxChainPemChars) errors.Add(field + ".chainPem", $"must be at most {MaxChainPemChars} characters.");
        if (string.IsNullOrWhiteSpace(upload.KeyPem)) errors.Add(field + ".keyPem", "is required: the private key in PEM, unencrypted.");
        else if (upload.KeyPem.Length > MaxKeyPemChars) errors.Add(field + ".keyPem", $"must be at most {MaxKeyPemChars} characters.");
        if (errors.Any) return null;

        var chain = new X509Certificate2Collection();
        try
        {
            chain.ImportFromPem(upload.ChainPem!);
        }
        catch (CryptographicException e)
        {
            errors.Add(field + ".chainPem", $"could not be read as PEM certificates: {e.Message}");
            return null;
        }
        if (chain.Count == 0)
        {
            errors.Add(field + ".chainPem", "holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
            return null;
        }
        var leaf = chain[0];
        var now = clock.GetUtcNow().UtcDateTime;
        if (leaf.NotAfter.ToUniversalTime() <= now) errors.Add(field + ".chainPem", $"has expired (on {leaf.NotAfter.ToUniversalTime():u}).");
        else if (leaf.NotBefore.ToUniversalTime() > now) errors.Add(field + ".chainPem", $"is not valid yet (from {leaf.NotBefore.ToUniversalTime():u}).");
        if (!leaf.MatchesHostname(host, allowWildcards: true, allowCommonName: false))
            errors.Add(field + ".chainPem", $"does not cover {host}: its first certificate names {string.Join(", ", Names(leaf))}.");
        if (!KeyMatches(leaf, upload.KeyPem!, out var keyProblem)) errors.Add(field + ".keyPem", keyProblem);
        var notAfter = leaf.NotAfter.ToUniversalTime();
        var normalized = string.Join("\n", chain.Select(c => c.ExportCertificatePem()));
        foreach (var c in chain) c.Dispose();
        return errors.Any ? null : (normalized, notAfter);
    }

    /// <summary>Whether <paramref name="keyPem"/> is an unencrypted private key (RSA or ECDSA) whose public half is the certificate's.</summary>
    private static bool KeyMatches(X509Certificate2 leaf, string keyPem, out string problem)
    {
        AsymmetricAlgorithm? key = null;
        foreach (var make in new Func<AsymmetricAlgorithm>[] { () => ECDsa.Create(), () => RSA.Create() })
        {
            var candidate = make();
            try
            {
                candidate.ImportFromPem(keyPem);
                key = candidate;
                break;
            }
            catch (Exception e) when (e is ArgumentException or CryptographicException)
            {
                candidate.Dispose();
            }
        }
        if (key is null)
        {
            problem = "holds no unencrypted RSA or ECDSA private key in PEM (-----BEGIN PRIVATE KEY-----).";
            return false;
        }
        using (key)
        {
            try
            {
                using var withKey = key is ECDsa ec ? leaf.CopyWithPrivateKey(ec) : leaf.CopyWithPrivateKey((RSA)key);
                problem = "";
                return true;
            }
            catch (Exception e) when (e is ArgumentException or CryptographicException)
            {
                problem = "does not match the certificate's public key.";
                return false;
            }
        }
    }

    /// <summary>The DNS names a certificate covers (its subject alternative names; the common name when it has none).</summary>
    public static IReadOnlyList<string> Names(X509Certificate2 certificate)
    {
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        var names = san?.EnumerateDnsNames().ToList() ?? [];
        return names.Count > 0 ? names : [certificate.GetNameInfo(X509NameType.DnsName, forIssuer: false)];
    }

    /// <summary>
    /// What Kestrel serves: the leaf with its key, and the rest of the chain as stored (offline: sent in every handshake,
    /// nothing fetched to complete it).
    /// </summary>
    public SslStreamCertificateContext Load(string chainPem, string protectedKeyPem)
    {
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(chainPem);
        using var leaf = X509Certificate2.CreateFromPem(chain[0].ExportCertificatePem(), Unprotect(protectedKeyPem));
        // An ephemeral key is not usable by SslStream on Linux for every algorithm: round-trip through PKCS#12.
        var served = X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null);
        chain[0].Dispose();
        chain.RemoveAt(0);
        return SslStreamCertificateContext.Create(served, chain, offline: true);
    }
}
