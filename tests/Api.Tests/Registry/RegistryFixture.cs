using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Registry;

/// <summary>
/// One Api with a team "reg" (project "p"), a developer, a viewer and an outsider, and the busybox
/// base image built by scripts/make-base-image.sh and pushed to library/busybox (its OCI layout kept).
/// </summary>
public abstract class RegistryFixture(Provider provider) : IAsyncLifetime
{
    public PlatformHost Host { get; private set; } = null!;
    public string Registry => $"{Host.BaseAddress.Host}:{Host.BaseAddress.Port}";
    public string Layout { get; } = Path.Combine(Path.GetTempPath(), "platform-tests", "busybox-" + Guid.NewGuid().ToString("N")[..8]);
    public string Developer { get; private set; } = "";
    public string Viewer { get; private set; } = "";
    public string Outsider { get; private set; } = "";
    public const long MaxBlobBytes = 8 * 1024 * 1024;

    /// <summary>Settings beyond the blob limit (where the blobs are stored).</summary>
    protected virtual Task<Dictionary<string, string?>> SettingsAsync() => Task.FromResult(new Dictionary<string, string?>());

    /// <summary>How many stored copies of the blob <paramref name="digest"/> there are, wherever the registry keeps blobs.</summary>
    public virtual Task<int> StoredCopiesAsync(string digest) =>
        Task.FromResult(Directory.GetFiles(Path.Combine(Host.DataDir, "registry", "blobs", "sha256"), digest[7..], SearchOption.AllDirectories).Length);

    public async Task InitializeAsync()
    {
        var settings = await SettingsAsync();
        settings["Platform:Registry:MaxBlobBytes"] = MaxBlobBytes.ToString();
        Host = new PlatformHost(provider, settings: settings);
        var admin = Host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "reg" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/reg/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "elsewhere" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/elsewhere/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        Developer = await Host.UserTokenAsync("reg-dev@example.com");
        Viewer = await Host.UserTokenAsync("reg-viewer@example.com");
        Outsider = await Host.UserTokenAsync("reg-outsider@example.com");
        await admin.PutAsJsonAsync("/api/v1/teams/reg/members/reg-dev@example.com", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PutAsJsonAsync("/api/v1/teams/reg/members/reg-viewer@example.com", new { role = "viewer" }).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PutAsJsonAsync("/api/v1/teams/elsewhere/members/reg-outsider@example.com", new { role = "owner" }).ShouldBeAsync(HttpStatusCode.OK);

        var script = Path.Combine(RepoRoot, "scripts", "make-base-image.sh");
        (await Run.ToolAsync(script, [Registry, PlatformHost.AdminToken, Layout])).EnsureSuccess("make-base-image.sh");
    }

    public virtual async Task DisposeAsync()
    {
        if (Directory.Exists(Layout)) Directory.Delete(Layout, true);
        if (Host is not null) await Host.DisposeAsync();
    }

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Platform.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Platform.sln not found above the test binaries");
        }
    }

    public HttpClient Basic(string pat) => RegistryHttp.Basic(Host, pat);

    public Task<Platform.Host.Processes.ProcessResult> SkopeoAsync(params string[] args) =>
        Run.ToolAsync("skopeo", ["--insecure-policy", .. args]);
}

public sealed class SqliteRegistryFixture() : RegistryFixture(Provider.Sqlite);

public sealed class PostgresRegistryFixture() : RegistryFixture(Provider.Postgres);

/// <summary>The registry with its blobs in an S3-compatible bucket (s3rver on loopback), on PostgreSQL as several replicas would run it.</summary>
public sealed class S3RegistryFixture() : RegistryFixture(Provider.Postgres)
{
    public S3Server S3 { get; private set; } = null!;

    protected override async Task<Dictionary<string, string?>> SettingsAsync()
    {
        S3 = await S3Server.StartAsync();
        return S3.Settings(prefix: "reg/");
    }

    /// <summary>Copies in the bucket plus any left on the data folder (there must be none: the bucket holds the blobs).</summary>
    public override async Task<int> StoredCopiesAsync(string digest) =>
        (await S3.HoldsAsync(digest, "reg/") ? 1 : 0) + await base.StoredCopiesAsync(digest);

    public override async Task DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        finally
        {
            if (S3 is not null) await S3.DisposeAsync();
        }
    }
}

[CollectionDefinition("registry-sqlite")]
public sealed class SqliteRegistryCollection : ICollectionFixture<SqliteRegistryFixture>;

[CollectionDefinition("registry-postgres")]
public sealed class PostgresRegistryCollection : ICollectionFixture<PostgresRegistryFixture>;

[CollectionDefinition("registry-s3")]
public sealed class S3RegistryCollection : ICollectionFixture<S3RegistryFixture>;
