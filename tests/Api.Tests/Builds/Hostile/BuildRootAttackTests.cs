using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// Root in a RUN step was root on the Api's machine: a runc or buildah escape would have held the database and the
/// signing keys. Now buildah runs rootless as the build account: the step's root is that account in a user name-space,
/// and what the account can reach on the host is checked the way an escaped step would try it.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildRootAttackTests
{
    [Fact]
    public async Task A_RUN_steps_root_is_the_unprivileged_build_account_on_the_host_which_reads_none_of_the_platforms_secrets()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var marker = "rootcheck-" + Guid.NewGuid().ToString("N")[..12];
        const string TestSecret = "PLATFORM_TEST_ENV_SECRET";
        Environment.SetEnvironmentVariable(TestSecret, marker);   // the Api's environment (in this process): must not reach the build's
        await cluster.StartAgentAsync("n1");
        var source = await BuildKit.GitAppAsync(cluster, "rooty", new { env = new Dictionary<string, string> { ["DB_PASSWORD"] = marker + "-app" }, readiness = new { type = "process" } });
        await source.PushAsync(new Dictionary<string, string>
        {
            ["Dockerfile"] = $"""
                FROM busybox
                RUN id -u > /uid && cat /proc/self/uid_map > /map && mkdir /owned && chown 1000:1000 /owned && touch /owned/file
                RUN echo {marker} > /dev/null; sleep 600 || true
                CMD ["sleep", "3600"]
                """,
        }, "who am I");

        // The step as the host sees it, while it waits: its ids are the build account's, its user name-space not the host's.
        var account = (await Run.ToolAsync("getent", ["passwd", "platform-build"])).EnsureSuccess("getent").Stdout.Split(':');
        var (uid, gid) = (int.Parse(account[2]), int.Parse(account[3]));
        int step = 0;
        await Cluster.WaitAsync(() => Task.FromResult((step = ProcessWith(marker)) > 0), 180, "the RUN step to start");
        var status = File.ReadAllLines($"/proc/{step}/status");
        Assert.Equal($"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", status.Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)));
        Assert.Equal($"Gid:\t{gid}\t{gid}\t{gid}\t{gid}", status.Single(l => l.StartsWith("Gid:", StringComparison.Ordinal)));
        // (Its capabilities are those of root in that name-space: they act on nothing the host's name-space owns.)
        Assert.NotEqual(new FileInfo("/proc/self/ns/user").LinkTarget, new FileInfo($"/proc/{step}/ns/user").LinkTarget);
        Assert.Equal($"0 {uid} 1", string.Join(' ', File.ReadLines($"/proc/{step}/uid_map").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)));

        // No process of the account carries the Api's environment (positive control: a program this process starts does).
        Assert.Contains(marker, (await Run.ToolAsync("cat", ["/proc/self/environ"])).EnsureSuccess("cat").Stdout);
        var accounts = Directory.EnumerateDirectories("/proc").Select(d => Path.GetFileName(d)).Where(p => p.All(char.IsAsciiDigit))
            .Where(p => OwnerOf(p) == uid).ToList();
        Assert.NotEmpty(accounts);
        foreach (var pid in accounts)
            Assert.DoesNotContain(marker, Read($"/proc/{pid}/environ") ?? "");

        // What an escaped step would go for, tried as the build account: all closed. Positive control: root reads each.
        var layout = cluster.Host.Services.GetRequiredService<Platform.Api.Infrastructure.DataLayout>();
        var secrets = new List<string> { layout.Database, "/etc/shadow" };
        secrets.AddRange(Directory.EnumerateFiles(layout.Keys, "*", SearchOption.AllDirectories));
        secrets.AddRange(Directory.EnumerateFiles(layout.Registry, "*", SearchOption.AllDirectories).Take(3));
        secrets.AddRange(Directory.EnumerateFiles(layout.Git, "*", SearchOption.AllDirectories).Take(3));
        secrets.Add($"/proc/{Environment.ProcessId}/environ");
        Assert.True(secrets.Count >= 8, string.Join('\n', secrets));
        foreach (var file in secrets)
        {
            Assert.True(Read(file) is not null, $"root cannot read {file}");
            var tried = await Run.ToolAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "cat", "--", file]);
            Assert.True(!tried.Succeeded && tried.Stderr.Contains("Permission denied"), $"the build account read {file}: {tried.Stderr}");
        }
        var listing = await Run.ToolAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "ls", layout.Root]);
        Assert.False(listing.Succeeded, "the build account listed the data folder");

        // The step finishes (the test ends its wait), the build succeeds, and the image records the container's ids.
        (await Run.ToolAsync("pkill", ["-P", step.ToString(), "sleep"])).EnsureSuccess("pkill");   // its sleep: the shell is the container's init
        var build = await BuildKit.WaitForBuildAsync(cluster, "rooty", 1, "Succeeded");
        var oci = Path.Combine(cluster.Host.DataDir, "rooty-oci");
        (await Run.ToolAsync("skopeo", ["copy", "-q", "--src-tls-verify=false", "--src-creds=admin:" + PlatformHost.AdminToken,
            $"docker://{cluster.Registry}/{Cluster.Team}/{Cluster.Project}/rooty@{build.GetProperty("imageDigest").GetString()}", $"oci:{oci}:x"])).EnsureSuccess("skopeo copy");
        var entries = await EntriesAsync(oci);
        Assert.Equal((1000, 1000), entries["owned/"]);
        Assert.Equal((0, 0), entries["owned/file"]);
        Assert.Equal((0, 0), entries["uid"]);
        Assert.Equal("0\n", entries.Contents["uid"]);
        Assert.StartsWith($"0 {uid} 1", string.Join(' ', entries.Contents["map"].Split(' ', StringSplitOptions.RemoveEmptyEntries)));

        // The built app runs on the node; its spec and record hold its secrets, which are root's alone on the node too.
        await cluster.WaitForInstancesAsync("rooty", 1);
        var bundleFiles = Directory.EnumerateFiles(Path.Combine(cluster.AgentDataDir("n1"), "instances"), "*.json", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) is "config.json" or "instance.json").ToList();
        Assert.Equal(2, bundleFiles.Count);
        foreach (var file in bundleFiles)
        {
            Assert.Contains(marker + "-app", Read(file));
            var reach = await Run.ToolAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "stat", "--", Path.GetDirectoryName(file)!]);
            Assert.True(reach.Succeeded, $"positive control: the bundle is passable (its container's ids must reach it): {reach.Stderr}");
            var tried = await Run.ToolAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "--", "cat", "--", file]);
            Assert.True(!tried.Succeeded && tried.Stderr.Contains("Permission denied"), $"the build account read {file}: {tried.Stderr}");
        }
    }

    /// <summary>The pid whose command line names <paramref name="marker"/> and that runs as someone other than root (the step's shell), or 0.</summary>
    private static int ProcessWith(string marker)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (!name.All(char.IsAsciiDigit) || Read(Path.Combine(dir, "cmdline")) is not { } cmdline) continue;
            if (cmdline.Contains(marker, StringComparison.Ordinal) && cmdline.StartsWith("/bin/sh", StringComparison.Ordinal)) return int.Parse(name);
        }
        return 0;
    }

    private static int OwnerOf(string pid) =>
        Read($"/proc/{pid}/status")?.Split('\n').FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal)) is { } line
            ? int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]) : -1;

    private static string? Read(string file)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private sealed class Entries : Dictionary<string, (int, int)>
    {
        public Dictionary<string, string> Contents { get; } = [];
    }

    /// <summary>Every layer's entries (the last layer naming a path wins) with their owners, and small files' contents.</summary>
    private static async Task<Entries> EntriesAsync(string oci)
    {
        var index = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(oci, "index.json"))).RootElement;
        var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Blob(oci, index.GetProperty("manifests")[0].GetProperty("digest").GetString()!))).RootElement;
        var entries = new Entries();
        foreach (var layer in manifest.GetProperty("layers").EnumerateArray())
        {
            await using var file = File.OpenRead(Blob(oci, layer.GetProperty("digest").GetString()!));
            Stream stream = layer.GetProperty("mediaType").GetString()!.EndsWith("gzip", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var tar = new TarReader(stream);
            try
            {
                while (await tar.GetNextEntryAsync() is { } entry)
                {
                    var path = entry.Name.TrimStart('.', '/');
                    entries[path] = (entry.Uid, entry.Gid);
                    if (entry.DataStream is { Length: < 4096 } data) entries.Contents[path] = await new StreamReader(data).ReadToEndAsync();
                }
            }
            catch (EndOfStreamException)
            {
                // The test's busybox base was written by umoci, which ends a layer without the end blocks TarReader wants.
            }
        }
        return entries;
    }

    private static string Blob(string oci, string digest) => Path.Combine(oci, "blobs", "sha256", digest["sha256:".Length..]);
}
