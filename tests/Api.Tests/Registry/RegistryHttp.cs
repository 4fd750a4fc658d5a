using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>What registry tests share: digests, a Basic-authenticated client, a monolithic blob push.</summary>
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
}
