using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Registry;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>Garbage collection, quotas and restarts, each on a host of its own.</summary>
public abstract class RegistryLifecycleTests(Provider provider)
{
    private static string Sha(byte[] b) => RegistryHttp.Sha(b);
    private static HttpClient Basic(PlatformHost host, string pat) => RegistryHttp.Basic(host, pat);
    private static Task<string> PushBlobAsync(HttpClient client, string repo, byte[] content) => RegistryHttp.PushBlobAsync(client, repo, content);

    private static Task<string> PushImageAsync(HttpClient client, string repo, string reference, byte[] layer) =>
        RegistryHttp.PushImageAsync(client, repo, reference, layer);

    private static async Task TeamAsync(PlatformHost host, string team, long registryGiB = 10)
    {
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/quota", TenancyQuota(registryGiB)).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
    }

    private static object TenancyQuota(long registryGiB) =>
        new { memoryMiB = 4096, cpuMillicores = 4000, instances = 10, apps = 10, projects = 5, registryGiB, concurrentBuilds = 2 };

    [Fact]
    public async Task Garbage_collection_frees_only_unreferenced_content()
    {
        await using var host = new PlatformHost(provider, settings: new Dictionary<string, string?> { ["Platform:Registry:GcGracePeriod"] = "00:00:00" });
        await TeamAsync(host, "gc");
        var admin = Basic(host, PlatformHost.AdminToken);
        var keptLayer = RandomNumberGenerator.GetBytes(100_000);
        var kept = await PushImageAsync(admin, "gc/p/app", "v1", keptLayer);
        var droppedLayer = RandomNumberGenerator.GetBytes(200_000);
        var untagged = await PushImageAsync(admin, "gc/p/app", "v2", droppedLayer);
        Assert.Equal(HttpStatusCode.Accepted, (await admin.DeleteAsync("/v2/gc/p/app/manifests/v2")).StatusCode);   // now untagged
        var orphan = await PushBlobAsync(admin, "gc/p/app", RandomNumberGenerator.GetBytes(300_000));

        await using var scope = host.Services.CreateAsyncScope();
        var report = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.Equal(1, report.Manifests);
        Assert.True(report.Bytes >= 500_000, $"freed {report.Bytes} bytes");

        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/v2/gc/p/app/blobs/{orphan}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/v2/gc/p/app/manifests/{untagged}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/v2/gc/p/app/blobs/{Sha(droppedLayer)}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/v2/gc/p/app/manifests/v1")).StatusCode);
        Assert.Equal(keptLayer, await admin.GetByteArrayAsync($"/v2/gc/p/app/blobs/{Sha(keptLayer)}"));
        Assert.Equal(kept, (await admin.GetAsync("/v2/gc/p/app/manifests/v1")).Headers.GetValues("Docker-Content-Digest").Single());

        var again = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.Equal(new RegistryGc.Report(0, 0, 0, 0, 0), again);
    }

    [Fact]
    public async Task A_rollback_to_a_release_whose_tag_moved_still_pulls_after_garbage_collection()
    {
        await using var host = new PlatformHost(provider, settings: new Dictionary<string, string?> { ["Platform:Registry:GcGracePeriod"] = "00:00:00" });
        await TeamAsync(host, "rb");
        var registry = Basic(host, PlatformHost.AdminToken);
        var firstLayer = RandomNumberGenerator.GetBytes(100_000);
        var first = await PushImageAsync(registry, "rb/p/app", "v1", firstLayer);
        await host.Admin().PostAsJsonAsync("/api/v1/teams/rb/projects/p/apps", new { name = "app", image = "rb/p/app:v1", memoryMiB = 64 })
            .ShouldBeAsync(HttpStatusCode.Created);   // release 1, pinned to the digest v1 names now
        await PushImageAsync(registry, "rb/p/app", "v1", RandomNumberGenerator.GetBytes(100_000));   // the tag moves on
        var unreleased = await PushImageAsync(registry, "rb/p/app", "scratch", RandomNumberGenerator.GetBytes(50_000));
        Assert.Equal(HttpStatusCode.Accepted, (await registry.DeleteAsync("/v2/rb/p/app/manifests/scratch")).StatusCode);

        await using var scope = host.Services.CreateAsyncScope();
        var report = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.Equal(1, report.Manifests);   // positive control: the collector ran and took the image no release names
        Assert.Equal(HttpStatusCode.NotFound, (await registry.GetAsync($"/v2/rb/p/app/manifests/{unreleased}")).StatusCode);

        var rolledBack = await host.Admin().PostAsync("/api/v1/teams/rb/projects/p/apps/app/releases/1/rollback", null).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal($"rb/p/app@{first}", rolledBack.GetProperty("image").GetString());
        Assert.Equal(HttpStatusCode.OK, (await registry.GetAsync($"/v2/rb/p/app/manifests/{first}")).StatusCode);
        Assert.Equal(firstLayer, await registry.GetByteArrayAsync($"/v2/rb/p/app/blobs/{Sha(firstLayer)}"));
    }

    [Fact]
    public async Task An_image_only_running_instances_still_use_survives_garbage_collection_after_its_tag_moved()
    {
        await using var host = new PlatformHost(provider, settings: new Dictionary<string, string?> { ["Platform:Registry:GcGracePeriod"] = "00:00:00" });
        await TeamAsync(host, "ir");
        var admin = host.Admin();
        var registry = Basic(host, PlatformHost.AdminToken);
        // Created before its image exists: the release cannot pin a digest; the placement resolves one later.
        await admin.PostAsJsonAsync("/api/v1/teams/ir/projects/p/apps", new { name = "app", image = "ir/p/app:v1", memoryMiB = 64, cpuMillicores = 100 })
            .ShouldBeAsync(HttpStatusCode.Created);
        var join = await admin.PostAsJsonAsync("/api/v1/nodes/join-tokens", new { expiresInHours = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var joined = await host.Http().PostAsJsonAsync("/api/v1/nodes/join", new { joinToken = join.GetProperty("token").GetString(), name = "ir-node", address = "127.0.0.1" })
            .ShouldBeAsync(HttpStatusCode.OK);
        var token = await host.Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = joined.GetProperty("clientId").GetString()!,
            ["client_secret"] = joined.GetProperty("clientSecret").GetString()!, ["scope"] = "platform",
        })).ShouldBeAsync(HttpStatusCode.OK);
        var node = host.Http(token.GetProperty("access_token").GetString());
        var resources = new Platform.Contracts.NodeResources(4096, 4000);
        await node.PostAsJsonAsync("/api/v1/nodes/heartbeat", new Platform.Contracts.NodeHeartbeat("127.0.0.1", "test", resources, resources, null, 0))
            .ShouldBeAsync(HttpStatusCode.OK);

        var layer = RandomNumberGenerator.GetBytes(100_000);
        var running = await PushImageAsync(registry, "ir/p/app", "v1", layer);
        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<Platform.Data.PlatformDbContext>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!await db.Instances.AnyAsync(i => i.ImageDigest == running))
        {
            Assert.True(DateTime.UtcNow < deadline, "the app's instance was never placed with the pushed digest");
            await Task.Delay(100);
        }
        Assert.DoesNotContain(await db.Releases.Select(r => r.Image).ToListAsync(), i => i.Contains(running));   // only the instance names it
        await PushImageAsync(registry, "ir/p/app", "v1", RandomNumberGenerator.GetBytes(100_000));   // the tag moves on
        var unused = await PushImageAsync(registry, "ir/p/app", "scratch", RandomNumberGenerator.GetBytes(50_000));
        Assert.Equal(HttpStatusCode.Accepted, (await registry.DeleteAsync("/v2/ir/p/app/manifests/scratch")).StatusCode);

        var report = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.Equal(1, report.Manifests);   // positive control: what nothing runs is collected
        Assert.Equal(HttpStatusCode.NotFound, (await registry.GetAsync($"/v2/ir/p/app/manifests/{unused}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await registry.GetAsync($"/v2/ir/p/app/manifests/{running}")).StatusCode);
        Assert.Equal(layer, await registry.GetByteArrayAsync($"/v2/ir/p/app/blobs/{Sha(layer)}"));
    }

    [Fact]
    public async Task A_fresh_unreferenced_blob_survives_the_grace_period()
    {
        await using var host = new PlatformHost(provider);   // default grace period: one hour
        await TeamAsync(host, "grace");
        var admin = Basic(host, PlatformHost.AdminToken);
        var inFlight = await PushBlobAsync(admin, "grace/p/app", RandomNumberGenerator.GetBytes(1000));
        await using var scope = host.Services.CreateAsyncScope();
        var report = await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        Assert.Equal(0, report.Blobs);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/v2/grace/p/app/blobs/{inFlight}")).StatusCode);
    }

    [Fact]
    public async Task A_push_past_the_registry_quota_is_denied()
    {
        await using var host = new PlatformHost(provider);
        await TeamAsync(host, "full", registryGiB: 0);
        var admin = Basic(host, PlatformHost.AdminToken);
        var content = RandomNumberGenerator.GetBytes(1000);
        var response = await admin.PostAsync($"/v2/full/p/app/blobs/uploads/?digest={Sha(content)}", new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var error = (await response.ReadJsonAsync()).GetProperty("errors")[0];
        Assert.Equal("DENIED", error.GetProperty("code").GetString());
        Assert.Equal("registryGiB", error.GetProperty("detail").GetProperty("resource").GetString());

        await host.Admin().PutAsJsonAsync("/api/v1/teams/full/quota", TenancyQuota(1)).ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsync($"/v2/full/p/app/blobs/uploads/?digest={Sha(content)}", new ByteArrayContent(content))).StatusCode);
        var team = await host.Admin().GetAsync("/api/v1/teams/full").ShouldBeAsync(HttpStatusCode.OK);
        Assert.Equal(1000, team.GetProperty("quota").GetProperty("registryBytesUsed").GetInt64());
        Assert.Equal(1, team.GetProperty("quota").GetProperty("registryGiB").GetProperty("used").GetInt64());
    }

    [Fact]
    public async Task A_restart_keeps_repositories_tags_and_blobs()
    {
        string dataDir, digest;
        string? connectionString;
        var layer = RandomNumberGenerator.GetBytes(50_000);
        await using (var first = new PlatformHost(provider))
        {
            dataDir = first.DataDir;
            connectionString = first.ConnectionString;
            await TeamAsync(first, "keep");
            digest = await PushImageAsync(Basic(first, PlatformHost.AdminToken), "keep/p/app", "v1", layer);
        }
        await using var second = new PlatformHost(provider, dataDir, connectionString);
        var admin = Basic(second, PlatformHost.AdminToken);
        Assert.Equal(digest, (await admin.GetAsync("/v2/keep/p/app/manifests/v1")).Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(layer, await admin.GetByteArrayAsync($"/v2/keep/p/app/blobs/{Sha(layer)}"));
        var tags = await admin.GetFromJsonAsync<JsonElement>("/v2/keep/p/app/tags/list");
        Assert.Equal("v1", tags.GetProperty("tags")[0].GetString());
    }
}

public sealed class SqliteRegistryLifecycleTests() : RegistryLifecycleTests(Provider.Sqlite);

public sealed class PostgresRegistryLifecycleTests() : RegistryLifecycleTests(Provider.Postgres);
