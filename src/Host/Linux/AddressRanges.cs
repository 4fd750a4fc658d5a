namespace Platform.Host.Linux;

/// <summary>IPv4 destinations a tenant's workload (a build step, an instance) must not reach on its own.</summary>
public static class AddressRanges
{
    /// <summary>
    /// "This network", private (RFC 1918), shared (carrier-grade NAT), loopback, link-local (cloud metadata
    /// services at 169.254.169.254), multicast and reserved: whatever is not the public internet.
    /// </summary>
    public static readonly IReadOnlyList<string> NotPublic =
        ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"];

    /// <summary>Whether <paramref name="value"/> is an IPv4 range in CIDR notation (<c>10.1.0.0/16</c>).</summary>
    public static bool IsIPv4Cidr(string value) =>
        System.Net.IPNetwork.TryParse(value, out var n) && n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
        && value.Contains('/', StringComparison.Ordinal);

    /// <summary>Non-loopback IPv4 name servers of this machine (<c>/etc/resolv.conf</c>).</summary>
    public static IEnumerable<string> Resolvers()
    {
        string[] lines;
        try { lines = File.ReadAllLines("/etc/resolv.conf"); } catch (IOException) { yield break; }
        foreach (var l in lines)
        {
            var parts = l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (parts is ["nameserver", var a, ..] && System.Net.IPAddress.TryParse(a, out var ip)
                && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(ip))
                yield return a;
        }
    }
}
