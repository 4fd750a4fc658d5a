using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace Platform.Api.Nodes;

/// <summary>
/// The keys agents ask the Api to present on their control endpoints (logs), at rest. A hash would not
/// do: the Api must send the key itself. So it is protected with the Api's data-protection keys (kept
/// under {DataDir}/keys, shared by the replicas): a copy of the database alone opens no agent.
/// </summary>
public sealed class NodeControlKeys(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector("Platform.Nodes.ControlKey.v1");

    public string Protect(string key) => _protector.Protect(key);

    /// <summary>The key, or null when none was reported or it was protected with keys this Api does not have.</summary>
    public string? Unprotect(string? stored)
    {
        if (stored is null) return null;
        try { return _protector.Unprotect(stored); }
        catch (CryptographicException) { return null; }
    }
}
