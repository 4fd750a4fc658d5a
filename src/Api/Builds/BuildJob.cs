using System.Diagnostics;
using System.Text.RegularExpressions;
using Hangfire;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Api.Scheduling;
using Platform.Data;

namespace Platform.Api.Builds;

public static class BuildStates
{
    public const string Queued = "Queued";
    public const string Running = "Running";
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";
}

/// <summary>
/// Builds a pushed commit into an image (Hangfire, queue "builds", the build id as its argument): checks
/// the commit out in a scratch folder, runs <c>buildah bud</c> (runc, no network, a layer cache per
/// node) with short base names resolved to the platform registry's <c>library/</c>, pushes the image
/// tagged with the commit, records its digest and points the app at it, which rolls the app out.
/// The build pulls and pushes as the person who pushed, through a personal access token minted for
/// the build and revoked when it ends. Running it twice for one build does nothing the second time.
/// </summary>
public sealed partial class BuildJob(
    PlatformDbContext db, PlacementService placement, IServer server, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<BuildJob> log)
{
    public static string LogPath(PlatformOptions options, Guid build) => Path.Combine(options.FullDataDir, "builds", build.ToString("N") + ".log");

    [Queue("builds")]
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(Guid buildId, CancellationToken ct)
    {
        var build = await db.Builds.Include(b => b.App!).ThenInclude(a => a.Project!).ThenInclude(p => p.Team).FirstOrDefaultAsync(b => b.Id == buildId, ct);
        if (build is null || build.State != BuildStates.Queued) return;   // deleted, or already taken by another run
        var app = build.App!;
        var repository = $"{app.Project!.Team!.Name}/{app.Project.Name}/{app.Name}";
        build.State = BuildStates.Running;
        build.StartedAt = clock.GetUtcNow().UtcDateTime;
        await db.SaveChangesAsync(ct);

        var o = options.Value;
        var logFile = LogPath(o, build.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
        var scratch = Path.Combine(o.FullDataDir, "scratch", "build-" + build.Id.ToString("N"));
        var buildah = Path.Combine(o.FullDataDir, "buildah");
        var token = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        var pat = new PersonalAccessToken
        {
            UserId = build.CreatedBy!, Name = $"build {repository} #{build.Number}", Prefix = token[..12], Hash = TokenSecrets.Hash(token),
            CreatedAt = clock.GetUtcNow().UtcDateTime, ExpiresAt = clock.GetUtcNow().UtcDateTime.AddHours(2),
        };
        db.PersonalAccessTokens.Add(pat);
        await db.SaveChangesAsync(ct);
        try
        {
            await using var output = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            await output.WriteLineAsync($"==> building {repository} at {build.Commit}");
            var bare = Path.Combine(o.FullDataDir, "git", app.Id.ToString("N") + ".git");
            await StepAsync(output, "git", ["clone", "--quiet", "--no-checkout", bare, scratch], null, ct);
            await StepAsync(output, "git", ["-C", scratch, "checkout", "--quiet", build.Commit], null, ct);
            var dockerfile = Path.Combine(scratch, "Dockerfile");
            if (!File.Exists(dockerfile)) throw new BuildFailure("There is no Dockerfile at the root of the repository.");
            var registry = RegistryHost();
            await File.WriteAllTextAsync(dockerfile, ResolveShortNames(await File.ReadAllTextAsync(dockerfile, ct), registry), ct);

            var env = Config(buildah, registry);
            var image = $"{registry}/{repository}:{build.Commit}";
            await StepAsync(output, "buildah", ["bud", "--layers", "--isolation", "oci", "--runtime", "/usr/sbin/runc", "--network", "none",
                "--tls-verify=false", "--creds", "build:" + token, "--pull", "-f", dockerfile, "-t", image, scratch], env, ct);
            var digestFile = Path.Combine(scratch, ".digest");
            await StepAsync(output, "buildah", ["push", "--tls-verify=false", "--creds", "build:" + token, "--digestfile", digestFile,
                image, "docker://" + image], env, ct);
            var digest = (await File.ReadAllTextAsync(digestFile, ct)).Trim();
            await output.WriteLineAsync($"==> pushed {repository}@{digest}; rolling out");

            build.State = BuildStates.Succeeded;
            build.ImageDigest = digest;
            build.FinishedAt = clock.GetUtcNow().UtcDateTime;
            var tracked = await db.Apps.FirstAsync(a => a.Id == app.Id, ct);
            tracked.Image = $"{repository}@{digest}";
            tracked.Generation++;
            tracked.UpdatedAt = clock.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(ct);
            await placement.TryReconcileAsync([app.Id], ct);
        }
        catch (Exception e) when (e is BuildFailure or InvalidOperationException or IOException)
        {
            LogFailed(log, repository, build.Number, e.Message);
            db.ChangeTracker.Clear();
            await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s
                .SetProperty(b => b.State, BuildStates.Failed)
                .SetProperty(b => b.Reason, e.Message.Length > 1000 ? e.Message[..1000] : e.Message)
                .SetProperty(b => b.FinishedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
            await File.AppendAllTextAsync(logFile, $"==> failed: {e.Message}\n", CancellationToken.None);
        }
        finally
        {
            await db.PersonalAccessTokens.Where(t => t.Id == pat.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    private sealed class BuildFailure(string message) : Exception(message);

    /// <summary>The Api's own address, where the build reaches the registry.</summary>
    private string RegistryHost()
    {
        if (options.Value.PublicUrl is { } url) return new Uri(url).Authority;
        var address = server.Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "127.0.0.1").Replace("+", "127.0.0.1").Replace("*", "127.0.0.1")).Authority;
    }

    [GeneratedRegex(@"^(\s*FROM\s+)(?:--platform=\S+\s+)?([a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9_.-]+)?)(\s|$)", RegexOptions.IgnoreCase | RegexOptions.Multiline)]
    private static partial Regex ShortFrom();

    /// <summary><c>FROM busybox</c> (no slash: Docker Hub's library) becomes <c>FROM {registry}/library/busybox</c>.</summary>
    public static string ResolveShortNames(string dockerfile, string registry) =>
        ShortFrom().Replace(dockerfile, m => $"{m.Groups[1].Value}{registry}/library/{m.Groups[2].Value}{m.Groups[3].Value}");

    private static Dictionary<string, string> Config(string root, string registry)
    {
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, "storage.conf"),
            $"[storage]\ndriver = \"overlay\"\ngraphroot = \"{root}/storage\"\nrunroot = \"{root}/run\"\n");
        File.WriteAllText(Path.Combine(root, "registries.conf"),
            $"unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        File.WriteAllText(Path.Combine(root, "containers.conf"), "[engine]\nruntime = \"runc\"\n");
        return new()
        {
            ["CONTAINERS_STORAGE_CONF"] = Path.Combine(root, "storage.conf"),
            ["CONTAINERS_REGISTRIES_CONF"] = Path.Combine(root, "registries.conf"),
            ["CONTAINERS_CONF"] = Path.Combine(root, "containers.conf"),
        };
    }

    /// <summary>Runs one step with its output appended to the build log as it comes; a failure names the step.</summary>
    private static async Task StepAsync(StreamWriter output, string file, string[] args, Dictionary<string, string>? env, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        string? last = null;
        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (line.Contains("plat_", StringComparison.Ordinal)) continue;   // never a token in a log
                lock (output) output.WriteLine(line);
                if (line.Contains("error", StringComparison.OrdinalIgnoreCase)) last = line;
            }
        }
        await Task.WhenAll(Pump(process.StandardOutput), Pump(process.StandardError), process.WaitForExitAsync(ct));
        if (process.ExitCode != 0)
            throw new BuildFailure(last ?? $"{file} {args[0]} exited with {process.ExitCode}");
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Warning, Message = "Build #{Number} of {Repository} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string repository, int number, string reason);
}
