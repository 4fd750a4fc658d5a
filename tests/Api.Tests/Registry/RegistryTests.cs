using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

public abstract class RegistryTests(RegistryFixture f)
{
    private static string Sha(byte[] b) => RegistryHttp.Sha(b);
    private static string Unique(string prefix) => prefix + Guid.NewGuid().ToString("N")[..6];

    private static string IndexDigest(string layout) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(layout, "index.json"))).RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;

    private static Task<string> PushBlobAsync(HttpClient client, string repo, byte[] content) => RegistryHttp.PushBlobAsync(client, repo, content);

    [Fact]
    public async Task Skopeo_copies_an_oci_layout_in_and_out_with_identical_digests()
    {
        var repo = $"reg/p/{Unique("app")}";
        (await f.SkopeoAsync("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "dev:" + f.Developer,
            $"oci:{f.Layout}", $"docker://{f.Registry}/{repo}:v1")).EnsureSuccess("skopeo copy in");
        var back = Path.Combine(Path.GetTempPath(), "platform-tests", Unique("out"));
        (await f.SkopeoAsync("copy", "-q", "--src-tls-verify=false", "--src-creds", "dev:" + f.Developer,
            $"docker://{f.Registry}/{repo}:v1", $"oci:{back}:v1")).EnsureSuccess("skopeo copy out");
        Assert.Equal(IndexDigest(f.Layout), IndexDigest(back));
        var blobs = (string dir) => Directory.GetFiles(Path.Combine(dir, "blobs", "sha256")).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(blobs(f.Layout), blobs(back));

        // The viewer pulls too; the same digest answers HEAD with the spec's headers.
        (await f.SkopeoAsync("inspect", "--tls-verify=false", "--creds", "v:" + f.Viewer, $"docker://{f.Registry}/{repo}:v1")).EnsureSuccess("viewer inspect");
        var head = await f.Basic(f.Viewer).SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v2/{repo}/manifests/v1"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(IndexDigest(f.Layout), head.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", head.Content.Headers.ContentType?.MediaType);
        Assert.True(head.Content.Headers.ContentLength > 0);
    }

    [Fact]
    public async Task Buildah_pushes_and_pulls()
    {
        var root = Path.Combine(Path.GetTempPath(), "platform-tests", Unique("buildah"));
        string[] storage = ["--storage-driver", "vfs", "--root", Path.Combine(root, "root"), "--runroot", Path.Combine(root, "run")];
        var env = new Dictionary<string, string> { ["CONTAINERS_REGISTRIES_CONF"] = "/dev/null", ["BUILDAH_ISOLATION"] = "chroot" };
        try
        {
            (await Run.ToolAsync("buildah", [.. storage, "pull", "-q", "--tls-verify=false", "--creds", "dev:" + f.Developer,
                $"docker://{f.Registry}/library/busybox:latest"], env)).EnsureSuccess("buildah pull");
            var repo = $"reg/p/{Unique("bapp")}";
            (await Run.ToolAsync("buildah", [.. storage, "push", "-q", "--tls-verify=false", "--creds", "dev:" + f.Developer,
                $"{f.Registry}/library/busybox:latest", $"docker://{f.Registry}/{repo}:v2"], env)).EnsureSuccess("buildah push");
            (await Run.ToolAsync("buildah", [.. storage, "rmi", "-a", "-f"], env)).EnsureSuccess("buildah rmi");
            (await Run.ToolAsync("buildah", [.. storage, "pull", "-q", "--tls-verify=false", "--creds", "dev:" + f.Developer,
                $"docker://{f.Registry}/{repo}:v2"], env)).EnsureSuccess("buildah pull of the pushed image");
            var tags = await f.Basic(f.Developer).GetFromJsonAsync<JsonElement>($"/v2/{repo}/tags/list");
            Assert.Equal("v2", tags.GetProperty("tags")[0].GetString());
        }
        finally
        {
            await Run.ToolAsync("buildah", [.. storage, "rm", "-a"], env);
            await Run.ToolAsync("sh", ["-c", $"chmod -R u+w '{root}' 2>/dev/null; rm -rf '{root}'"]);
        }
    }

    [Fact]
    public async Task A_chunked_upload_reports_progress_refuses_a_wrong_offset_and_resumes()
    {
        var client = f.Basic(f.Developer);
        var repo = $"reg/p/{Unique("chunks")}";
        var content = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        var start = await client.PostAsync($"/v2/{repo}/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var location = start.Headers.Location!.ToString();

        async Task<HttpResponseMessage> Patch(int from, int to)
        {
            var body = new ByteArrayContent(content[from..to]);
            body.Headers.TryAddWithoutValidation("Content-Range", $"{from}-{to - 1}");
            return await client.SendAsync(new HttpRequestMessage(HttpMethod.Patch, location) { Content = body });
        }

        var first = await Patch(0, 1_000_000);
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal("0-999999", first.Headers.GetValues("Range").Single());
        location = first.Headers.Location!.ToString();

        // A chunk that does not continue where the upload stands is refused with the current range.
        var gap = await Patch(1_500_000, 2_000_000);
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, gap.StatusCode);
        Assert.Equal("0-999999", gap.Headers.GetValues("Range").Single());

        // Resumption: ask where the upload stands, continue from there.
        var status = await client.GetAsync(location);
        Assert.Equal(HttpStatusCode.NoContent, status.StatusCode);
        var next = int.Parse(status.Headers.GetValues("Range").Single().Split('-')[1]) + 1;
        Assert.Equal(HttpStatusCode.Accepted, (await Patch(next, 2_500_000)).StatusCode);

        var digest = Sha(content);
        var finish = await client.PutAsync($"{location}?digest={digest}", new ByteArrayContent(content[2_500_000..]));
        Assert.Equal(HttpStatusCode.Created, finish.StatusCode);
        Assert.Equal(digest, finish.Headers.GetValues("Docker-Content-Digest").Single());

        Assert.Equal(content, await client.GetByteArrayAsync($"/v2/{repo}/blobs/{digest}"));
        var ranged = new HttpRequestMessage(HttpMethod.Get, $"/v2/{repo}/blobs/{digest}");
        ranged.Headers.Range = new RangeHeaderValue(100, 199);
        var part = await client.SendAsync(ranged);
        Assert.Equal(HttpStatusCode.PartialContent, part.StatusCode);
        Assert.Equal(content[100..200], await part.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task A_blob_is_mounted_across_repositories_only_for_callers_who_may_pull_it()
    {
        var dev = f.Basic(f.Developer);
        var a = $"reg/p/{Unique("ma")}";
        var b = $"reg/p/{Unique("mb")}";
        var digest = await PushBlobAsync(dev, a, RandomNumberGenerator.GetBytes(4096));
        var mounted = await dev.PostAsync($"/v2/{b}/blobs/uploads/?mount={digest}&from={a}", null);
        Assert.Equal(HttpStatusCode.Created, mounted.StatusCode);
        Assert.Equal($"/v2/{b}/blobs/{digest}", mounted.Headers.Location!.ToString());
        Assert.Equal(HttpStatusCode.OK, (await dev.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/v2/{b}/blobs/{digest}"))).StatusCode);

        // The outsider cannot pull from team reg: their mount into their own team becomes a plain upload.
        var outsider = f.Basic(f.Outsider);
        var theirs = await outsider.PostAsync($"/v2/elsewhere/p/app/blobs/uploads/?mount={digest}&from={a}", null);
        Assert.Equal(HttpStatusCode.Accepted, theirs.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await outsider.GetAsync($"/v2/elsewhere/p/app/blobs/{digest}")).StatusCode);
    }

    [Fact]
    public async Task Wrong_digests_missing_blobs_and_oversized_uploads_are_refused_with_the_spec_codes()
    {
        var dev = f.Basic(f.Developer);
        var repo = $"reg/p/{Unique("bad")}";
        var wrong = await dev.PostAsync($"/v2/{repo}/blobs/uploads/?digest=sha256:{new string('0', 64)}", new ByteArrayContent([1, 2, 3]));
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        Assert.Equal("DIGEST_INVALID", (await wrong.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await dev.GetAsync($"/v2/{repo}/blobs/sha256:{new string('0', 64)}")).StatusCode);

        var config = await PushBlobAsync(dev, repo, Encoding.UTF8.GetBytes("{}"));
        var missing = "sha256:" + new string('a', 64);
        var manifest = JsonSerializer.Serialize(new
        {
            schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = config, size = 2 },
            layers = new[] { new { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = missing, size = 10 } },
        });
        var put = await dev.PutAsync($"/v2/{repo}/manifests/v1", new StringContent(manifest, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        Assert.Equal("MANIFEST_BLOB_UNKNOWN", (await put.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await dev.GetAsync($"/v2/{repo}/manifests/v1")).StatusCode);

        var junk = await dev.PutAsync($"/v2/{repo}/manifests/v1", new StringContent("{not json", Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal("MANIFEST_INVALID", (await junk.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("code").GetString());

        var big = RandomNumberGenerator.GetBytes((int)RegistryFixture.MaxBlobBytes + 1);
        var tooLarge = await dev.PostAsync($"/v2/{repo}/blobs/uploads/?digest={Sha(big)}", new ByteArrayContent(big));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Equal("SIZE_INVALID", (await tooLarge.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("code").GetString());
    }

    [Fact]
    public async Task Viewers_cannot_push_outsiders_cannot_pull_and_anonymous_callers_are_challenged()
    {
        var repo = $"reg/p/{Unique("acl")}";
        (await f.SkopeoAsync("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "dev:" + f.Developer,
            $"oci:{f.Layout}", $"docker://{f.Registry}/{repo}:v1")).EnsureSuccess("skopeo copy in");

        var viewerPush = await f.SkopeoAsync("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "v:" + f.Viewer,
            $"oci:{f.Layout}", $"docker://{f.Registry}/{repo}:viewer");
        Assert.NotEqual(0, viewerPush.ExitCode);
        var viewerHttp = await f.Basic(f.Viewer).PostAsync($"/v2/{repo}/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.Forbidden, viewerHttp.StatusCode);
        Assert.Equal("DENIED", (await viewerHttp.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("code").GetString());

        var outsiderPull = await f.SkopeoAsync("inspect", "--tls-verify=false", "--creds", "o:" + f.Outsider, $"docker://{f.Registry}/{repo}:v1");
        Assert.NotEqual(0, outsiderPull.ExitCode);
        Assert.Equal(HttpStatusCode.NotFound, (await f.Basic(f.Outsider).GetAsync($"/v2/{repo}/manifests/v1")).StatusCode);

        var anonymous = await f.Host.Http().GetAsync($"/v2/{repo}/manifests/v1");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        var challenge = anonymous.Headers.WwwAuthenticate.Single();
        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Contains($"scope=\"repository:{repo}:pull\"", challenge.Parameter);
        Assert.Contains("/registry/token", challenge.Parameter);
        Assert.NotEqual(0, (await f.SkopeoAsync("inspect", "--tls-verify=false", "--no-creds", $"docker://{f.Registry}/{repo}:v1")).ExitCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await f.Basic("plat_not-a-real-token-0123456789").GetAsync("/v2/")).StatusCode);
    }

    [Fact]
    public async Task Registry_tokens_carry_only_the_scopes_the_role_allows()
    {
        var repo = $"reg/p/{Unique("tok")}";
        var response = await f.Basic(f.Viewer).GetAsync($"/registry/token?service=platform&scope=repository:{repo}:pull,push");
        var token = (await response.ReadJsonAsync()).GetProperty("token").GetString();
        var bearer = f.Host.Http(token);
        Assert.Equal(HttpStatusCode.OK, (await bearer.GetAsync("/v2/")).StatusCode);
        var push = await bearer.PostAsync($"/v2/{repo}/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.Unauthorized, push.StatusCode);
        Assert.Contains("insufficient_scope", push.Headers.WwwAuthenticate.Single().Parameter);
        Assert.Equal(HttpStatusCode.Unauthorized, (await f.Host.Http().GetAsync("/registry/token?service=platform")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await f.Host.Http("garbage-token").GetAsync("/v2/")).StatusCode);
    }

    [Fact]
    public async Task Concurrent_pushes_of_the_same_blob_all_succeed_and_store_it_once()
    {
        var repo = $"reg/p/{Unique("race")}";
        var content = RandomNumberGenerator.GetBytes(512 * 1024);
        var digest = Sha(content);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            f.Basic(f.Developer).PostAsync($"/v2/{repo}/blobs/uploads/?digest={digest}", new ByteArrayContent(content))));
        Assert.All(results, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Equal(content, await f.Basic(f.Developer).GetByteArrayAsync($"/v2/{repo}/blobs/{digest}"));
        Assert.Equal(1, await f.StoredCopiesAsync(digest));
    }

    [Fact]
    public async Task Tags_are_listed_in_pages_deleted_by_developers_and_referrers_are_found()
    {
        var dev = f.Basic(f.Developer);
        var repo = $"reg/p/{Unique("tags")}";
        var config = await PushBlobAsync(dev, repo, Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\"}"));
        string Manifest(object? subject = null, string? artifactType = null) => JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["schemaVersion"] = 2, ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
            ["artifactType"] = artifactType,
            ["config"] = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = config, size = 39 },
            ["layers"] = Array.Empty<object>(),
            ["subject"] = subject,
        }.Where(kv => kv.Value is not null).ToDictionary());
        var image = Manifest();
        string imageDigest = "";
        foreach (var tag in new[] { "a", "b", "c", "d", "e" })
        {
            var put = await dev.PutAsync($"/v2/{repo}/manifests/{tag}", new StringContent(image, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            imageDigest = put.Headers.GetValues("Docker-Content-Digest").Single();
        }
        var page = await dev.GetAsync($"/v2/{repo}/tags/list?n=2&last=a");
        Assert.Equal(["b", "c"], (await page.ReadJsonAsync()).GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Contains("last=c", page.Headers.GetValues("Link").Single());

        var signature = Manifest(new { mediaType = "application/vnd.oci.image.manifest.v1+json", digest = imageDigest, size = Encoding.UTF8.GetByteCount(image) },
            "application/vnd.example.signature");
        var sigDigest = Sha(Encoding.UTF8.GetBytes(signature));
        var putSig = await dev.PutAsync($"/v2/{repo}/manifests/{sigDigest}", new StringContent(signature, Encoding.UTF8, "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal(HttpStatusCode.Created, putSig.StatusCode);
        Assert.Equal(imageDigest, putSig.Headers.GetValues("OCI-Subject").Single());
        var referrers = await (await dev.GetAsync($"/v2/{repo}/referrers/{imageDigest}?artifactType=application/vnd.example.signature")).ReadJsonAsync();
        Assert.Equal(sigDigest, referrers.GetProperty("manifests")[0].GetProperty("digest").GetString());
        Assert.Equal("application/vnd.example.signature", referrers.GetProperty("manifests")[0].GetProperty("artifactType").GetString());

        Assert.Equal(HttpStatusCode.Forbidden, (await f.Basic(f.Viewer).DeleteAsync($"/v2/{repo}/manifests/a")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await dev.DeleteAsync($"/v2/{repo}/manifests/a")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await dev.GetAsync($"/v2/{repo}/manifests/a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await dev.GetAsync($"/v2/{repo}/manifests/b")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await dev.DeleteAsync($"/v2/{repo}/manifests/{imageDigest}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await dev.GetAsync($"/v2/{repo}/manifests/b")).StatusCode);
    }

    [Fact]
    public async Task The_team_lists_its_images_with_tags_digests_and_sizes()
    {
        var repo = $"reg/p/{Unique("img")}";
        (await f.SkopeoAsync("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "dev:" + f.Developer,
            $"oci:{f.Layout}", $"docker://{f.Registry}/{repo}:v1")).EnsureSuccess("skopeo copy in");
        var images = await f.Host.Http(f.Viewer).GetFromJsonAsync<JsonElement>("/api/v1/teams/reg/images?limit=500");
        var entry = images.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("name").GetString() == repo);
        Assert.Equal("p", entry.GetProperty("project").GetString());
        var tag = entry.GetProperty("tags")[0];
        Assert.Equal("v1", tag.GetProperty("tag").GetString());
        Assert.Equal(IndexDigest(f.Layout), tag.GetProperty("digest").GetString());
        var layoutBytes = Directory.GetFiles(Path.Combine(f.Layout, "blobs", "sha256")).Sum(b => new FileInfo(b).Length);
        Assert.Equal(layoutBytes, tag.GetProperty("size").GetInt64());
        Assert.Equal(HttpStatusCode.NotFound, (await f.Host.Http(f.Outsider).GetAsync("/api/v1/teams/reg/images")).StatusCode);
    }

    [Fact]
    public async Task The_catalog_is_for_platform_admins()
    {
        var catalog = await f.Host.Admin().GetFromJsonAsync<JsonElement>("/v2/_catalog");
        Assert.Contains(catalog.GetProperty("repositories").EnumerateArray(), r => r.GetString() == "library/busybox");
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Basic(f.Developer).GetAsync("/v2/_catalog")).StatusCode);
    }

    [Fact]
    public async Task Library_images_are_pulled_by_every_user_and_pushed_only_by_platform_admins()
    {
        (await f.SkopeoAsync("inspect", "--tls-verify=false", "--creds", "o:" + f.Outsider, $"docker://{f.Registry}/library/busybox:latest"))
            .EnsureSuccess("outsider pulls library/busybox");
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Basic(f.Developer).PostAsync("/v2/library/busybox/blobs/uploads/", null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await f.Basic(f.Developer).GetAsync("/v2/reg/p/manifests/latest")).StatusCode);   // not team/project/app
    }
}

[Collection("registry-sqlite")]
public sealed class SqliteRegistryTests(SqliteRegistryFixture f) : RegistryTests(f);

[Collection("registry-postgres")]
public sealed class PostgresRegistryTests(PostgresRegistryFixture f) : RegistryTests(f);
