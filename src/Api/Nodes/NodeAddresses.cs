using System.Net;
using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Nodes;

/// <summary>
/// A node's address: an IP address or a DNS host name, given at join and fixed from then on. No two
/// nodes share one, so a node joined with a stolen join token cannot stand in for another node.
/// </summary>
public static class NodeAddresses
{
    public const int MaxLength = 253;

    /// <summary>Null when <paramref name="address"/> is an IP address or a DNS host name; what is wrong otherwise.</summary>
    public static string? Validate(string address) =>
        address.Length is 0 or > MaxLength || Uri.CheckHostName(address) is not (UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6)
            ? $"must be an IP address or a host name (at most {MaxLength} characters)."
            : null;

    /// <summary>The same address however it is spelt (host names ignore case, IPv6 has many spellings).</summary>
    public static bool Same(string a, string b) =>
        IPAddress.TryParse(a, out var x) && IPAddress.TryParse(b, out var y) ? x.Equals(y) : string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    public static async Task<bool> TakenAsync(PlatformDbContext db, string address, Guid? except, CancellationToken ct)
    {
        var others = await db.Nodes.AsNoTracking().Where(n => n.Address != null && n.Id != except).Select(n => n.Address!).ToListAsync(ct);
        return others.Any(o => Same(o, address));
    }
}
