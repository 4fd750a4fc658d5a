using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>What registry tests share: digests, a Basic-authenticated client, a monolithic blob push, a one-layer image push.</summary>
public static class RegistryHttp
{
    public static string Sha(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>An HTTP client sending a personal access token as HTTP Basic, as docker and git do.</summary>
    public static HttpClient Basic(PlatformHost host, string pat)
    {
        var client = host.Http();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + pat)));
        return client;
    }

    public static async Task<string> PushBlobAsync(HttpClient client, string repo, byte[] content)
    {
        var response = await client.PostAsync($"/v2/{repo}/blobs/uploads/?digest={Sha(content)}", new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return Sha(content);
    }

    /// <summary>Pushes a one-layer OCI image (config, layer, manifest) as <paramref name="reference"/>; returns the manifest's digest.</summary>
    public static async Task<string> PushImageAsync(HttpClient client, string repo, string reference, byte[] layer)
    {
        var config = await PushBlobAsync(client, repo, Encoding.UTF8.GetBytes("{\"os\":\"linux\"}"));
        var layerDigest = await PushBlobAsync(client, repo, layer);
        var manifest = JsonSerializer.Serialize(new
        {
            schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = config, size = 14 },
            layers = new[] { new { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = layerDigest, size = layer.Length } },
        });
        var put = await client.PutAsync($"/v2/{repo}/manifests/{reference}", new StringContent(manifest, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        return put.Headers.GetValues("Docker-Content-Digest").Single();
    }
}
