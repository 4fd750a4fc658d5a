using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Builds;

/// <summary>What build tests share: settings, a git working copy per app, waiting for builds.</summary>
public static class BuildKit
{
    /// <summary>Test builds use their own bridge and subnet, apart from a platform a developer runs on the same machine.</summary>
    public static readonly Dictionary<string, string?> BuildSettings = new()
    {
        ["Platform:Builds:Bridge"] = "pbtst0",
        ["Platform:Builds:Subnet"] = "10.255.253.0/24",
        ["Platform:Builds:CgroupName"] = "platform-builds-tests",
    };

    /// <summary>A local working copy of one app, pushed with plain git over HTTP with a personal access token.</summary>
    public sealed class Source(string root, string remote)
    {
        private string Home => Path.Combine(root, "home");
        public string Work => Path.Combine(root, "work");

        public static async Task<Source> InitAsync(string root, string remote)
        {
            var s = new Source(root, remote);
            Directory.CreateDirectory(s.Home);
            Directory.CreateDirectory(s.Work);
            (await Run.GitAsync(s.Home, s.Work, ["init", "--initial-branch=main"], TimeSpan.FromMinutes(1))).EnsureSuccess("git init");
            return s;
        }

        /// <summary>Writes the files, commits and pushes; returns the commit id.</summary>
        public async Task<string> PushAsync(IReadOnlyDictionary<string, string> files, string message)
        {
            foreach (var (name, text) in files) await File.WriteAllTextAsync(Path.Combine(Work, name), text);
            (await Git("add", ".")).EnsureSuccess("git add");
            (await Git("commit", "-m", message)).EnsureSuccess("git commit");
            // The tests follow builds through the Api; a push that followed them itself would return only at their end.
            (await Git("push", "-o", "no-follow", remote, "main")).EnsureSuccess("git push");
            return (await Git("rev-parse", "HEAD")).Stdout.Trim();
        }

        private Task<Platform.Host.Processes.ProcessResult> Git(params string[] args) =>
            Run.GitAsync(Home, Work, args, TimeSpan.FromMinutes(2));
    }

    public static async Task<Source> GitAppAsync(Cluster cluster, string name, object? extra = null)
    {
        var body = new Dictionary<string, object?> { ["name"] = name, ["instances"] = 1, ["memoryMiB"] = 64, ["port"] = 8080 };
        if (extra is not null)
            foreach (var p in extra.GetType().GetProperties()) body[p.Name] = p.GetValue(extra);
        var app = await cluster.Admin.PostAsJsonAsync(cluster.Apps, body).ShouldBeAsync(HttpStatusCode.Created);
        var remote = app.GetProperty("gitUrl").GetString()!.Replace("http://", $"http://admin:{PlatformHost.AdminToken}@");
        return await Source.InitAsync(Path.Combine(cluster.Host.DataDir, "src-" + name), remote);
    }

    public static async Task<JsonElement> BuildAsync(Cluster cluster, string app, int number)
    {
        var list = await cluster.Admin.GetFromJsonAsync<JsonElement>($"{cluster.Apps}/{app}/builds");
        return list.GetProperty("items").EnumerateArray().FirstOrDefault(b => b.GetProperty("number").GetInt32() == number);
    }

    public static async Task<JsonElement> WaitForBuildAsync(Cluster cluster, string app, int number, string state, int seconds = 180)
    {
        JsonElement build = default;
        await Cluster.WaitAsync(async () =>
        {
            build = await BuildAsync(cluster, app, number);
            return build.ValueKind == JsonValueKind.Object && build.GetProperty("state").GetString() is "Succeeded" or "Failed" or "Cancelled";
        }, seconds, () => $"build #{number} of {app}: {build}");
        var log = await cluster.Admin.GetStringAsync($"{cluster.Apps}/{app}/builds/{number}/log");
        Assert.True(build.GetProperty("state").GetString() == state, $"build #{number} is {build} — log:\n{log}");
        return build;
    }

    public static async Task WaitForStateAsync(Cluster cluster, string app, int number, string state, int seconds = 120)
    {
        JsonElement build = default;
        await Cluster.WaitAsync(async () =>
        {
            build = await BuildAsync(cluster, app, number);
            return build.ValueKind == JsonValueKind.Object && build.GetProperty("state").GetString() == state;
        }, seconds, () => $"build #{number} of {app} {state}: {build}");
    }
}
