using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds.Hostile;

/// <summary>
/// A repository that points its Dockerfile path (or a COPY) through a symbolic link at the Api's own data folder:
/// its signing keys. Before, the build read the key as the Dockerfile and wrote the rewritten text back over it.
/// Real git, buildah, runc.
/// </summary>
[Collection("runtime")]
[Trait("Suite", "Hostile")]
public sealed class BuildPathAttackTests
{
    [Fact]
    public async Task A_Dockerfile_path_through_a_symlinked_folder_to_the_Apis_keys_is_refused_naming_it_and_the_key_is_unchanged()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var keys = Path.Combine(cluster.Host.DataDir, "keys");
        var key = Directory.EnumerateFiles(keys, "*.pem").First();
        var before = SHA256.HashData(await File.ReadAllBytesAsync(key));
        var source = await BuildKit.GitAppAsync(cluster, "paths", new { dockerfilePath = "keys/" + Path.GetFileName(key) });
        // An absolute link to the data folder's keys, and a relative one climbing out of the checkout to the data folder.
        File.CreateSymbolicLink(Path.Combine(source.Work, "keys"), keys);
        File.CreateSymbolicLink(Path.Combine(source.Work, "up"), "../../..");
        Directory.CreateDirectory(Path.Combine(source.Work, "docker"));
        File.CreateSymbolicLink(Path.Combine(source.Work, "build"), "docker");   // a link that stays inside
        await source.PushAsync(new Dictionary<string, string>
        {
            ["docker/Dockerfile"] = "FROM busybox\nCOPY docker/message /message\nRUN cat /message\n",
            ["docker/message"] = "built through an in-repository link\n",
        }, "links");

        var absolute = await BuildKit.WaitForBuildAsync(cluster, "paths", 1, "Failed");
        Assert.Equal($"The Dockerfile path 'keys/{Path.GetFileName(key)}' goes through 'keys', a symbolic link that leads outside the repository: builds read only files inside it.",
            absolute.GetProperty("reason").GetString());

        await Patch(cluster, "up/keys/" + Path.GetFileName(key));
        var relative = await BuildKit.WaitForBuildAsync(cluster, "paths", 2, "Failed");
        Assert.Contains("goes through 'up', a symbolic link that leads outside the repository", relative.GetProperty("reason").GetString());
        Assert.Equal(before, SHA256.HashData(await File.ReadAllBytesAsync(key)));

        // The positive control: the same repository, its Dockerfile reached through the link that stays inside, builds.
        await Patch(cluster, "build/Dockerfile");
        await BuildKit.WaitForBuildAsync(cluster, "paths", 3, "Succeeded");
        Assert.Contains("built through an in-repository link", await cluster.Admin.GetStringAsync($"{cluster.Apps}/paths/builds/3/log"));
        // The checkout is not written: the rewritten Dockerfile lives beside it, in the scratch folder.
        Assert.Equal(before, SHA256.HashData(await File.ReadAllBytesAsync(key)));
    }

    [Fact]
    public async Task A_COPY_through_a_symlinked_folder_to_the_Apis_keys_finds_nothing_and_the_keys_stay_out_of_the_build()
    {
        await using var cluster = await Cluster.StartAsync(settings: BuildKit.BuildSettings);
        var source = await BuildKit.GitAppAsync(cluster, "copy");
        File.CreateSymbolicLink(Path.Combine(source.Work, "keys"), Path.Combine(cluster.Host.DataDir, "keys"));
        Directory.CreateDirectory(Path.Combine(source.Work, "inside"));
        File.CreateSymbolicLink(Path.Combine(source.Work, "alias"), "inside");
        await source.PushAsync(new Dictionary<string, string>
        {
            ["inside/note.pem"] = "-----BEGIN NOTE----- an in-repository file\n",
            ["Dockerfile"] = "FROM busybox\nCOPY keys/ /stolen/\nRUN cat /stolen/*.pem\n",
        }, "steal");
        // buildah reads the context as if it were the root: the link's target is looked up inside the checkout.
        var stolen = await BuildKit.WaitForBuildAsync(cluster, "copy", 1, "Failed");
        var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/copy/builds/1/log");
        var reason = stolen.GetProperty("reason").GetString()!;
        Assert.Contains("COPY keys/ /stolen/", reason);
        // buildah's copier found nothing to read there: its "no such file or directory" is in the log, or (when the last
        // stderr lines miss the log under load, and the long copier message in the reason is cut before them) the reason
        // shows the failed read of the link itself.
        Assert.Matches(@"no such file or directory|error during bulk transfer", reason + "\n" + log);
        Assert.DoesNotContain("PRIVATE KEY", log);

        // The positive control: the same COPY and cat through a link that stays inside the checkout.
        await source.PushAsync(new Dictionary<string, string> { ["Dockerfile"] = "FROM busybox\nCOPY alias/ /stolen/\nRUN cat /stolen/*.pem\n" }, "inside");
        await BuildKit.WaitForBuildAsync(cluster, "copy", 2, "Succeeded");
        Assert.Contains("-----BEGIN NOTE----- an in-repository file", await cluster.Admin.GetStringAsync($"{cluster.Apps}/copy/builds/2/log"));
    }

    private static async Task Patch(Cluster cluster, string dockerfilePath)
    {
        await cluster.Admin.PatchAsJsonAsync($"{cluster.Apps}/paths", new { dockerfilePath }).ShouldBeAsync(HttpStatusCode.OK);
        await cluster.Admin.PostAsJsonAsync($"{cluster.Apps}/paths/builds", new { }).ShouldBeAsync(HttpStatusCode.Created);
    }
}
