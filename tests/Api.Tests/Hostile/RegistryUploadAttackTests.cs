using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Registry;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Registry;
using Platform.Data;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A developer attacks the registry's upload sessions: appending to a blob while another request finishes it,
/// planting bytes under a digest before the real content arrives, streaming past the team's quota, opening
/// sessions without end. Each host is the test's own, with the team "up" (project "p").
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class RegistryUploadAttackTests
{
    private static async Task<PlatformHost> HostAsync(Dictionary<string, string?>? settings = null, params string[] teams)
    {
        var host = new PlatformHost(Provider.Sqlite, settings: settings);
        var admin = host.Admin();
        foreach (var team in teams.Length == 0 ? ["up"] : teams)
        {
            await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
            await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        }
        return host;
    }

    private static string ErrorCode(JsonElement body) => body.GetProperty("errors")[0].GetProperty("code").GetString()!;

    private static HttpRequestMessage Patch(string location, byte[] chunk, long? from = null)
    {
        var content = new ByteArrayContent(chunk);
        if (from is { } f) content.Headers.TryAddWithoutValidation("Content-Range", $"{f}-{f + chunk.Length - 1}");
        return new HttpRequestMessage(HttpMethod.Patch, location) { Content = content };
    }

    /// <summary>A body that sends its first part, then waits for <paramref name="gate"/> before the rest: the request stays in flight.</summary>
    private sealed class GatedContent(byte[] first, byte[] rest, Task gate) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(first);
            await stream.FlushAsync();
            await gate;
            await stream.WriteAsync(rest);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = first.Length + rest.Length;
            return true;
        }
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting until {what}.");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_patch_sent_while_the_upload_is_being_finished_is_refused_and_the_blob_is_exactly_what_was_digested()
    {
        await using var host = await HostAsync();
        var dev = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        var head = RandomNumberGenerator.GetBytes(1 << 20);
        var tail = RandomNumberGenerator.GetBytes(1 << 20);
        var start = await dev.PostAsync("/v2/up/p/app/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var location = start.Headers.Location!.ToString();
        var id = location[(location.LastIndexOf('/') + 1)..];

        // Positive control: a PATCH while nobody else writes is taken.
        var first = await dev.SendAsync(Patch(location, head, 0));
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);

        // The finishing PUT is held open half-way through its body; the attacker PATCHes meanwhile.
        var expected = head.Concat(tail).ToArray();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finishing = dev.PutAsync($"{location}?digest={RegistryHttp.Sha(expected)}", new GatedContent(tail[..1000], tail[1000..], gate.Task));
        var uploads = Path.Combine(host.DataDir, "registry", "uploads");
        await WaitForAsync(() => !File.Exists(Path.Combine(uploads, id)), "the finishing request holds the session");

        var evil = RandomNumberGenerator.GetBytes(4096);
        foreach (var attempt in new[] { Patch(location, evil), Patch(location, evil, head.Length) })
        {
            var refused = await dev.SendAsync(attempt);
            Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, refused.StatusCode);
        }
        gate.SetResult();
        var finished = await finishing;
        Assert.Equal(HttpStatusCode.Created, finished.StatusCode);
        Assert.Equal(expected, await dev.GetByteArrayAsync($"/v2/up/p/app/blobs/{RegistryHttp.Sha(expected)}"));

        // Finished: the session is gone for every later PATCH too.
        var late = await dev.SendAsync(Patch(location, evil));
        Assert.Equal(HttpStatusCode.NotFound, late.StatusCode);
        Assert.Equal("BLOB_UPLOAD_UNKNOWN", ErrorCode(await late.ReadJsonAsync()));
        Assert.Empty(Directory.GetFiles(uploads));
    }

    [Fact]
    public async Task Bytes_planted_under_a_digest_are_replaced_by_the_next_upload_of_that_content_not_trusted()
    {
        await using var host = await HostAsync();
        var dev = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        var content = RandomNumberGenerator.GetBytes(64 * 1024);
        var digest = await RegistryHttp.PushBlobAsync(dev, "up/p/app", content);
        Assert.Equal(content, await dev.GetByteArrayAsync($"/v2/up/p/app/blobs/{digest}"));

        // Whatever put them there (a disk error, a hand on the data folder), the stored bytes no longer match their name…
        var stored = Path.Combine(host.DataDir, "registry", "blobs", "sha256", digest[7..9], digest[7..]);
        var planted = RandomNumberGenerator.GetBytes(content.Length);
        await File.WriteAllBytesAsync(stored, planted);
        Assert.Equal(planted, await dev.GetByteArrayAsync($"/v2/up/p/app/blobs/{digest}"));   // the probe sees what is stored

        // …and the next upload of the real content does not dedupe onto them: its verified bytes replace them.
        Assert.Equal(digest, await RegistryHttp.PushBlobAsync(dev, "up/p/other", content));
        Assert.Equal(content, await dev.GetByteArrayAsync($"/v2/up/p/app/blobs/{digest}"));
        Assert.Equal(content, await File.ReadAllBytesAsync(stored));

        // The same for a manifest pushed again.
        var manifestDigest = await RegistryHttp.PushImageAsync(dev, "up/p/app", "v1", content);
        var manifestFile = Path.Combine(host.DataDir, "registry", "blobs", "sha256", manifestDigest[7..9], manifestDigest[7..]);
        var manifest = await File.ReadAllBytesAsync(manifestFile);
        await File.WriteAllBytesAsync(manifestFile, Encoding.UTF8.GetBytes("{}"));
        Assert.Equal(manifestDigest, await RegistryHttp.PushImageAsync(dev, "up/p/app", "v1", content));
        Assert.Equal(manifest, await File.ReadAllBytesAsync(manifestFile));
    }

    [Fact]
    public async Task An_upload_streaming_past_the_registry_quota_is_cut_off_mid_stream_with_the_figures_and_uploads_in_flight_count()
    {
        await using var host = await HostAsync();
        var admin = host.Admin();
        await admin.PutAsJsonAsync("/api/v1/teams/up/quota",
            new { memoryMiB = 4096, cpuMillicores = 4000, instances = 10, apps = 10, projects = 5, registryGiB = 1, concurrentBuilds = 2 }).ShouldBeAsync(HttpStatusCode.OK);
        var dev = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        // The team stores a blob that leaves it 1 MiB of its GiB (its size set in the database: the test does not write a GiB).
        var seed = await RegistryHttp.PushBlobAsync(dev, "up/p/app", RandomNumberGenerator.GetBytes(1000));
        await using (var scope = host.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<PlatformDbContext>().RegistryBlobs.Where(b => b.Digest == seed)
                .ExecuteUpdateAsync(s => s.SetProperty(b => b.Size, (1L << 30) - (1 << 20)));

        async Task<string> StartAsync()
        {
            var started = await dev.PostAsync("/v2/up/p/app/blobs/uploads/", null);
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            return started.Headers.Location!.ToString();
        }

        // A 4 MiB stream into 1 MiB of room is stopped with the figures; the session keeps nothing of it.
        var a = await StartAsync();
        var flood = await dev.SendAsync(Patch(a, RandomNumberGenerator.GetBytes(4 << 20), 0));
        Assert.Equal(HttpStatusCode.Forbidden, flood.StatusCode);
        var error = (await flood.ReadJsonAsync()).GetProperty("errors")[0];
        Assert.Equal("DENIED", error.GetProperty("code").GetString());
        Assert.Equal("registryGiB", error.GetProperty("detail").GetProperty("resource").GetString());
        Assert.Equal(1L << 30, error.GetProperty("detail").GetProperty("limit").GetInt64());
        Assert.Equal((1L << 30) - (1 << 20), error.GetProperty("detail").GetProperty("used").GetInt64());
        var status = await dev.GetAsync(a);
        Assert.Equal("0-0", status.Headers.GetValues("Range").Single());

        // Two sessions side by side: the first one's bytes in flight count against the second.
        var fits = await dev.SendAsync(Patch(a, RandomNumberGenerator.GetBytes(768 << 10), 0));
        Assert.Equal(HttpStatusCode.Accepted, fits.StatusCode);   // positive control: within the room
        var b = await StartAsync();
        var second = await dev.SendAsync(Patch(b, RandomNumberGenerator.GetBytes(512 << 10), 0));
        Assert.Equal(HttpStatusCode.Forbidden, second.StatusCode);
        Assert.Equal((1L << 30) - (1 << 20) + (768 << 10),
            (await second.ReadJsonAsync()).GetProperty("errors")[0].GetProperty("detail").GetProperty("used").GetInt64());
        Assert.Equal(HttpStatusCode.Accepted, (await dev.SendAsync(Patch(b, RandomNumberGenerator.GetBytes(128 << 10), 0))).StatusCode);
    }

    [Fact]
    public async Task A_team_opening_upload_sessions_without_end_is_stopped_at_the_cap_and_other_teams_are_not()
    {
        await using var host = await HostAsync(new() { ["Platform:Registry:MaxUploadSessionsPerTeam"] = "3" }, "up", "other");
        var dev = RegistryHttp.Basic(host, PlatformHost.AdminToken);
        var open = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var started = await dev.PostAsync($"/v2/up/p/app{i}/blobs/uploads/", null);
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            open.Add(started.Headers.Location!.ToString());
        }
        var refused = await dev.PostAsync("/v2/up/p/more/blobs/uploads/", null);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var error = (await refused.ReadJsonAsync()).GetProperty("errors")[0];
        Assert.Equal("TOOMANYREQUESTS", error.GetProperty("code").GetString());
        Assert.Equal(3, error.GetProperty("detail").GetProperty("limit").GetInt32());

        // Positive controls: another team is not affected; a session cancelled frees its place.
        Assert.Equal(HttpStatusCode.Accepted, (await dev.PostAsync("/v2/other/p/app/blobs/uploads/", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await dev.DeleteAsync(open[0])).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await dev.PostAsync("/v2/up/p/more/blobs/uploads/", null)).StatusCode);
    }

    /// <summary>The real store, except that deleting one blob waits at a gate: the collector stops between its two deletes.</summary>
    private sealed class GatedBlobStore(string root, string digest) : IBlobStore
    {
        private readonly FileSystemBlobStore inner = new(root);
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task DeleteAsync(string d, CancellationToken ct)
        {
            if (d == digest)
            {
                Entered.TrySetResult();
                await Task.WhenAny(Gate.Task, Task.Delay(TimeSpan.FromSeconds(60), ct));
            }
            await inner.DeleteAsync(d, ct);
        }

        public Task<long?> SizeAsync(string d, CancellationToken ct) => inner.SizeAsync(d, ct);
        public Task<Stream?> OpenReadAsync(string d, CancellationToken ct) => inner.OpenReadAsync(d, ct);
        public void CreateUpload(Guid upload) => inner.CreateUpload(upload);
        public Task<long> AppendAsync(Guid upload, long offset, Stream data, UploadLimit limit, CancellationToken ct) => inner.AppendAsync(upload, offset, data, limit, ct);
        public long UploadSize(Guid upload) => inner.UploadSize(upload);
        public Task<SealedUpload> SealAsync(Guid upload, Stream tail, UploadLimit limit, CancellationToken ct) => inner.SealAsync(upload, tail, limit, ct);
        public Task PutAsync(string d, ReadOnlyMemory<byte> content, CancellationToken ct) => inner.PutAsync(d, content, ct);
        public void DeleteUpload(Guid upload) => inner.DeleteUpload(upload);
        public IEnumerable<string> StaleTemporaryFiles(DateTime before) => inner.StaleTemporaryFiles(before);
    }

    private static bool WaitsOnALock(string connectionString)
    {
        using var connection = new Npgsql.NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()", connection);
        return (long)command.ExecuteScalar()! > 0;
    }

    [Theory]
    [InlineData(Provider.Sqlite)]
    [InlineData(Provider.Postgres)]   // row locks instead of SQLite's one writer: the order of the writes is what holds
    public async Task An_upload_committing_a_blob_the_collector_is_deleting_keeps_its_bytes(Provider provider)
    {
        var content = RandomNumberGenerator.GetBytes(64 * 1024);
        var digest = RegistryHttp.Sha(content);
        GatedBlobStore? gated = null;
        var dataDir = Path.Combine(Path.GetTempPath(), "platform-tests", Guid.NewGuid().ToString("N"));
        await using var host = new PlatformHost(provider, dataDir, services: s =>
            s.AddSingleton<IBlobStore>(gated = new GatedBlobStore(Path.Combine(dataDir, "registry"), digest)));
        var admin = host.Admin();
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = "up" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync("/api/v1/teams/up/projects", new { name = "p" }).ShouldBeAsync(HttpStatusCode.Created);
        var dev = RegistryHttp.Basic(host, PlatformHost.AdminToken);

        // The blob is stored but nothing links it any more, for longer than the grace period: garbage.
        await RegistryHttp.PushBlobAsync(dev, "up/p/app", content);
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            await db.RegistryRepositoryBlobs.Where(l => l.Digest == digest).ExecuteDeleteAsync();
            await db.RegistryBlobs.Where(b => b.Digest == digest).ExecuteUpdateAsync(x => x.SetProperty(b => b.CreatedAt, DateTime.UtcNow.AddHours(-2)));
        }
        // The same content is pushed again, chunked: its bytes are in a session when the collector starts.
        var start = await dev.PostAsync("/v2/up/p/app/blobs/uploads/", null);
        var location = start.Headers.Location!.ToString();
        var id = location[(location.LastIndexOf('/') + 1)..];
        Assert.Equal(HttpStatusCode.Accepted, (await dev.SendAsync(Patch(location, content, 0))).StatusCode);

        var gc = Task.Run(async () =>
        {
            await using var scope = host.Services.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<RegistryGc>().RunAsync(CancellationToken.None);
        });
        await gated!.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));   // the collector deleted the row and is about to delete the file
        var stored = Path.Combine(host.DataDir, "registry", "blobs", "sha256", digest[7..9], digest[7..]);
        var storedAt = File.GetLastWriteTimeUtc(stored);
        var finishing = dev.PutAsync($"{location}?digest={digest}", new ByteArrayContent([]));
        // The collector goes on once the upload has put its file in place (an upload moving bytes before recording
        // them would then lose them) or waits on the collector's transaction (SQLite: from the moment it takes its
        // bytes it writes; PostgreSQL: a statement waiting on a row lock).
        if (provider == Provider.Sqlite)
            await WaitForAsync(() => !File.Exists(Path.Combine(host.DataDir, "registry", "uploads", id)), "the upload took its bytes for the commit");
        else
            await WaitForAsync(() => File.GetLastWriteTimeUtc(stored) != storedAt || WaitsOnALock(host.ConnectionString!), "the upload moved its file in or waits on the collector");
        gated.Gate.SetResult();

        Assert.Equal(HttpStatusCode.Created, (await finishing).StatusCode);
        var report = await gc;
        Assert.Equal(1, report.Blobs);   // positive control: the collector did delete the garbage it found
        Assert.Equal(content, await dev.GetByteArrayAsync($"/v2/up/p/app/blobs/{digest}"));
    }
}
