using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;

namespace Platform.Api.Identity;

/// <summary>
/// RSA keys for signing and encrypting tokens, persisted as PEM under {DataDir}/keys so tokens stay
/// valid across restarts. Replicas share them through the shared data folder (docs/operations.md).
/// </summary>
public static class SigningKeys
{
    /// <summary>The key <paramref name="name"/> in <paramref name="dir"/> (<see cref="Infrastructure.DataLayout.Keys"/>), made on first use.</summary>
    public static SecurityKey LoadOrCreate(string dir, string name)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name + ".pem");
        var rsa = RSA.Create();
        if (!File.Exists(path))
        {
            rsa.KeySize = 2048;
            var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllText(temp, rsa.ExportPkcs8PrivateKeyPem());
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            try
            {
                // No overwrite: when two processes race, the first key wins and both use it.
                File.Move(temp, path, overwrite: false);
            }
            catch (IOException)
            {
                File.Delete(temp);
            }
        }
        rsa.ImportFromPem(File.ReadAllText(path));
        return new RsaSecurityKey(rsa) { KeyId = name + "-" + Convert.ToHexStringLower(SHA256.HashData(rsa.ExportRSAPublicKey()))[..16] };
    }
}
