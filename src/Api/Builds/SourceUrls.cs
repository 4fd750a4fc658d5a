using System.Net;
using System.Net.Sockets;

namespace Platform.Api.Builds;

/// <summary>
/// Which repository URLs a build may clone. Syntax (checked when the URL is set): http, https or ssh
/// only, a host, no file://, git://, ext:: or local path. Addresses (checked when the build clones, on
/// what the name resolves to then, and the clone is pinned to those addresses so a second lookup cannot
/// differ): no loopback, link-local, private, shared, unspecified or multicast address, unless the host
/// is on the operator's allow-list (Platform:Builds:AllowedSourceHosts) — an in-house git server.
/// </summary>
public static class SourceUrls
{
    /// <summary>Null when <paramref name="url"/> is an acceptable repository URL, else why not.</summary>
    public static string? SyntaxProblem(string url, IReadOnlyCollection<string>? allowedHosts = null)
    {
        if (url.Length > 2048) return "must be at most 2048 characters.";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)) return "must be an absolute http(s):// or ssh:// URL of a git repository.";
        if (uri.Scheme is not ("http" or "https" or "ssh"))
            return $"scheme '{uri.Scheme}' is not allowed: only http, https and ssh repositories are cloned.";
        if (string.IsNullOrEmpty(uri.Host)) return "must name a host.";
        if (url.Any(c => char.IsControl(c) || c == ' ')) return "must not contain spaces or control characters.";
        if (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var literal) && Forbidden(literal) is { } why
            && allowedHosts?.Contains(uri.Host.Trim('[', ']'), StringComparer.OrdinalIgnoreCase) != true)
            return $"points to a {why} address.";
        return null;
    }

    /// <summary>Why an address may not be cloned from (loopback, private, …), or null when it may.</summary>
    public static string? Forbidden(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        if (IPAddress.IsLoopback(ip)) return "loopback";
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (ip.IsIPv6LinkLocal || ip.IsIPv6SiteLocal) return "link-local";
            if (ip.IsIPv6Multicast) return "multicast";
            if (ip.Equals(IPAddress.IPv6Any)) return "unspecified";
            var b6 = ip.GetAddressBytes();
            if ((b6[0] & 0xFE) == 0xFC) return "private";   // fc00::/7
            return null;
        }
        var b = ip.GetAddressBytes();
        return b switch
        {
            [0, ..] => "unspecified",
            [10, ..] => "private",
            [172, >= 16 and <= 31, ..] => "private",
            [192, 168, ..] => "private",
            [169, 254, ..] => "link-local",
            [100, >= 64 and <= 127, ..] => "shared (carrier-grade NAT)",
            [>= 224, ..] => "multicast or reserved",
            _ => null,
        };
    }

    /// <summary>
    /// Resolves the URL's host and checks every address; returns the addresses to pin the clone to.
    /// Throws <see cref="InvalidOperationException"/> with a reason a person can act on.
    /// </summary>
    public static async Task<IPAddress[]> CheckAddressesAsync(string url, IReadOnlyCollection<string> allowedHosts, CancellationToken ct)
    {
        if (SyntaxProblem(url, allowedHosts) is { } problem)
            throw new InvalidOperationException($"Refused to clone {Redact(url)}: the URL {problem}");
        var host = new Uri(url).Host.Trim('[', ']');
        IPAddress[] addresses;
        try
        {
            addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"The source host '{host}' could not be resolved: {e.Message}");
        }
        if (addresses.Length == 0) throw new InvalidOperationException($"The source host '{host}' has no address.");
        if (allowedHosts.Contains(host, StringComparer.OrdinalIgnoreCase)) return addresses;
        foreach (var a in addresses)
            if (Forbidden(a) is { } why)
                throw new InvalidOperationException(
                    $"Refused to clone {Redact(url)}: '{host}' resolves to {a}, a {why} address. An operator can allow an in-house git server with Platform:Builds:AllowedSourceHosts.");
        return addresses;
    }

    /// <summary>The URL without credentials (user info), for logs, reasons and responses.</summary>
    public static string Redact(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0
            ? url.Replace(uri.UserInfo + "@", "***@", StringComparison.Ordinal)
            : url;
}
