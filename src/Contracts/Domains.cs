using System.Net;

namespace Platform.Contracts;

// An app's custom domains (`…/apps/{app}/domains/{host}`) and the suffixes a team may claim (`/teams/{team}/domain-suffixes`).

/// <summary>
/// A certificate uploaded for a domain instead of one from ACME: the chain in PEM (the host's certificate first,
/// then its intermediates) and its private key in PEM (PKCS#8 or the algorithm's own form, unencrypted).
/// </summary>
public sealed record UploadedCertificate(string? ChainPem, string? KeyPem);

/// <summary>
/// <c>PUT …/domains/{host}</c>: claims the host for the app. Without <c>certificate</c> the platform obtains one from
/// its ACME directory (http-01, answered by the router); with one, that certificate is served (and not renewed).
/// </summary>
public sealed record PutDomainRequest(UploadedCertificate? Certificate = null);

/// <summary>
/// A custom domain of an app: <c>state</c> Pending (waiting for its first attempt), Issuing (the ACME order runs),
/// Ready (a certificate is served) or Failed (<c>message</c> says why, in the CA's words); <c>source</c> acme or
/// uploaded; <c>dnsRecord</c> what to create at the DNS provider so the host reaches the router.
/// </summary>
public sealed record DomainResponse(
    string Host, string State, string? Message, string Source, DateTime? NotAfter, DateTime? RenewAt, string DnsRecord,
    DateTime CreatedAt, DateTime UpdatedAt);

/// <summary>The host-name suffixes a team's members may claim (empty: any host); set by platform admins.</summary>
public sealed record DomainSuffixesRequest(IReadOnlyList<string>? Suffixes);

public sealed record DomainSuffixesResponse(IReadOnlyList<string> Suffixes);

/// <summary>The certificate served for every app host under the apps domain (<c>/api/v1/ingress/certificate</c>): the names it covers and its expiry.</summary>
public sealed record IngressCertificateResponse(IReadOnlyList<string> Names, DateTime NotAfter, DateTime UpdatedAt);

public static class DomainStates
{
    public const string Pending = "Pending";
    public const string Issuing = "Issuing";
    public const string Ready = "Ready";
    public const string Failed = "Failed";
}

/// <summary>Host names an app may be reached at besides its own: fully qualified DNS names, ASCII (IDNs in their <c>xn--</c> form).</summary>
public static class DomainNames
{
    public const int MaxLength = 253;

    /// <summary>The host as stored and compared (lower case, no trailing dot).</summary>
    public static string Normalize(string host) => host.Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>
    /// A sentence a person can act on, or null when <paramref name="host"/> (normalized) may be claimed: at least two
    /// labels, each a DNS label, no wildcard, no IP address, not within <paramref name="platformDomain"/> (the
    /// platform's own app hosts).
    /// </summary>
    public static string? Validate(string host, string platformDomain)
    {
        if (host.Length == 0) return "is required.";
        if (host.Length > MaxLength) return $"must be at most {MaxLength} characters (got {host.Length}).";
        if (host.StartsWith("*.", StringComparison.Ordinal)) return "must name one host: wildcards cannot be validated over http-01 (upload a wildcard certificate to the platform's apps domain instead).";
        if (IPAddress.TryParse(host, out _)) return "must be a host name, not an IP address.";
        if (host.Any(c => c > 127)) return "must be ASCII: write an internationalised name in its punycode form (xn--…).";
        var labels = host.Split('.');
        if (labels.Length < 2) return "must be a fully qualified name with at least two labels (www.example.com).";
        if (labels.FirstOrDefault(l => !Names.IsDns1123Label(l)) is { } bad)
            return $"has an invalid label '{bad}': labels are 1–63 lower-case letters, digits and '-', starting and ending with a letter or digit.";
        if (labels[^1].All(char.IsAsciiDigit)) return "must end in a top-level name, not a number.";
        var own = Normalize(platformDomain);
        if (host == own || host.EndsWith("." + own, StringComparison.Ordinal)) return $"is within the platform's own apps domain {own}: every app has its host there already.";
        return null;
    }

    /// <summary>Whether <paramref name="host"/> is one of <paramref name="suffixes"/> or below one (an empty list allows any).</summary>
    public static bool Allowed(string host, IReadOnlyCollection<string> suffixes) =>
        suffixes.Count == 0 || suffixes.Any(s => host == s || host.EndsWith("." + s, StringComparison.Ordinal));
}
