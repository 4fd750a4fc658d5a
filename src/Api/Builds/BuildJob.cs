using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Hangfire;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Api.Releases;
using Platform.Api.Scheduling;
using Platform.Data;

namespace Platform.Api.Builds;

public static class BuildStates
{
    public const string Queued = "Queued";
    public const string Running = "Running";
    public const string Succeeded = "Succeeded";
    public const string Failed = "Failed";
    public const string Cancelled = "Cancelled";

    public static bool IsFinished(string state) => state is Succeeded or Failed or Cancelled;
}

/// <summary>
/// Builds a commit into an image (Hangfire, queue "builds", the build id as its argument). It first claims
/// the build — at most the team's <c>concurrentBuilds</c> run at once and one per app, older builds first;
/// a build that must wait is looked at again in two seconds — then, in a cgroup with the team's memory,
/// CPU and pids limits and under its time limit: checks the commit out in a scratch folder (the
/// platform's git, or the app's source URL after its addresses were checked), runs <c>buildah bud</c>
/// (runc, the app's own layer cache, RUN steps in the isolated build network) with short base names
/// resolved to the platform registry's <c>library/</c>, pushes the image tagged with the commit, records
/// a release and points the app at the digest, which rolls it out. It writes a heartbeat while it runs
/// and obeys a cancel request within a second or two. The build pulls and pushes as the person who
/// started it, through a token minted for the build and revoked when it ends. Running it twice for one
/// build does nothing the second time.
/// </summary>
public sealed partial class BuildJob(
    PlatformDbContext db, PlacementService placement, ReleaseService releases, BuildNetwork network, IBackgroundJobClient jobs,
    IServer server, IServiceScopeFactory scopes, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<BuildJob> log)
{
    /// <summary>Builds running in this process (their scratch folders, name-spaces and cgroups are not leftovers).</summary>
    public static readonly ConcurrentDictionary<Guid, Guid> Local = new();

    private static readonly SemaphoreSlim ClaimLock = new(1, 1);

    public static string LogPath(PlatformOptions options, Guid build) => Path.Combine(options.FullDataDir, "builds", build.ToString("N") + ".log");
    public static string ScratchPath(PlatformOptions options, Guid build) => Path.Combine(options.FullDataDir, "scratch", "build-" + build.ToString("N"));
    public static string StoragePath(PlatformOptions options, Guid app) => Path.Combine(options.FullDataDir, "buildah", app.ToString("N"));

    public static BuildLimits LimitsOf(TeamQuota q, BuildsOptions d) => new(
        q.BuildMemoryMiB > 0 ? q.BuildMemoryMiB : d.MemoryMiB,
        q.BuildCpuMillicores > 0 ? q.BuildCpuMillicores : d.CpuMillicores,
        q.BuildPids > 0 ? q.BuildPids : d.Pids,
        q.BuildTimeoutSeconds > 0 ? q.BuildTimeoutSeconds : d.TimeoutSeconds);

    private enum Claim { Gone, Wait, Claimed }

    [Queue("builds")]
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(Guid buildId, CancellationToken ct)
    {
        var claim = await ClaimAsync(buildId, ct);
        if (claim == Claim.Wait) jobs.Schedule<BuildJob>(j => j.RunAsync(buildId, CancellationToken.None), TimeSpan.FromSeconds(2));
        if (claim != Claim.Claimed) return;
        Local[buildId] = buildId;
        try
        {
            await BuildAsync(buildId, ct);
        }
        finally
        {
            Local.TryRemove(buildId, out _);
        }
    }

    /// <summary>Queued → Running when the team has a free build slot, no older build of the team waits and the app builds nothing else.</summary>
    private async Task<Claim> ClaimAsync(Guid buildId, CancellationToken ct)
    {
        await ClaimLock.WaitAsync(ct);
        try
        {
            var strategy = db.Database.CreateExecutionStrategy();
            return await strategy.ExecuteAsync(async () =>
            {
                db.ChangeTracker.Clear();
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                var b = await db.Builds.AsNoTracking().Where(x => x.Id == buildId)
                    .Select(x => new { x.State, x.CancelRequested, x.CreatedAt, x.AppId, TeamId = x.App!.Project!.TeamId, Limit = x.App.Project.Team!.Quota.ConcurrentBuilds })
                    .FirstOrDefaultAsync(ct);
                if (b is null || b.State != BuildStates.Queued) return Claim.Gone;
                if (db.Database.IsNpgsql())
                    await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({0x706C6274_00000000L ^ b.TeamId.GetHashCode()})", ct);
                var now = clock.GetUtcNow().UtcDateTime;
                if (b.CancelRequested)
                {
                    await db.Builds.Where(x => x.Id == buildId && x.State == BuildStates.Queued).ExecuteUpdateAsync(s => s
                        .SetProperty(x => x.State, BuildStates.Cancelled).SetProperty(x => x.FinishedAt, now), ct);
                    await tx.CommitAsync(ct);
                    return Claim.Gone;
                }
                var team = db.Builds.Where(x => x.App!.Project!.TeamId == b.TeamId);
                var running = await team.CountAsync(x => x.State == BuildStates.Running, ct);
                var olderWaiting = await team.AnyAsync(x => x.State == BuildStates.Queued && (x.CreatedAt < b.CreatedAt || (x.CreatedAt == b.CreatedAt && x.Id.CompareTo(buildId) < 0)), ct);
                var appBusy = await db.Builds.AnyAsync(x => x.AppId == b.AppId && x.State == BuildStates.Running, ct);
                if (running >= Math.Max(1, b.Limit) || olderWaiting || appBusy) return Claim.Wait;
                var claimed = await db.Builds.Where(x => x.Id == buildId && x.State == BuildStates.Queued).ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.State, BuildStates.Running).SetProperty(x => x.StartedAt, now)
                    .SetProperty(x => x.HeartbeatAt, now).SetProperty(x => x.Attempts, x => x.Attempts + 1), ct);
                await tx.CommitAsync(ct);
                return claimed == 1 ? Claim.Claimed : Claim.Gone;
            });
        }
        finally
        {
            ClaimLock.Release();
        }
    }

    private async Task BuildAsync(Guid buildId, CancellationToken shutdown)
    {
        db.ChangeTracker.Clear();
        var build = await db.Builds.Include(b => b.App!).ThenInclude(a => a.Project!).ThenInclude(p => p.Team).FirstAsync(b => b.Id == buildId, shutdown);
        var app = build.App!;
        var team = app.Project!.Team!;
        var repository = $"{team.Name}/{app.Project.Name}/{app.Name}";
        var o = options.Value;
        var limits = LimitsOf(team.Quota, o.Builds);
        var logFile = LogPath(o, build.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
        var scratch = ScratchPath(o, build.Id);
        var storage = StoragePath(o, app.Id);

        var token = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        var pat = new PersonalAccessToken
        {
            UserId = build.CreatedBy ?? "", Name = $"build {repository} #{build.Number}", Prefix = token[..12], Hash = TokenSecrets.Hash(token),
            CreatedAt = clock.GetUtcNow().UtcDateTime, ExpiresAt = clock.GetUtcNow().UtcDateTime.AddSeconds(limits.TimeoutSeconds + 600),
        };

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        stop.CancelAfter(TimeSpan.FromSeconds(limits.TimeoutSeconds));
        var cancelled = false;
        using var watching = new CancellationTokenSource();
        var watcher = WatchAsync(build.Id, () => { cancelled = true; stop.Cancel(); }, watching.Token);
        BuildCgroup? cgroup = null;
        BuildNetwork.Lease? lease = null;
        using var output = new BuildLog(logFile, o.Builds.MaxLogBytes);
        try
        {
            output.Say($"building {repository} #{build.Number} at {build.Commit} (memory {limits.MemoryMiB} MiB, CPU {limits.CpuMillicores}m, {limits.Pids} processes, {limits.TimeoutSeconds} s)");
            // The build pulls and pushes with the rights of the person who started it (for webhooks: who set the source).
            if (build.CreatedBy is null || !await db.Users.AnyAsync(u => u.Id == build.CreatedBy, shutdown))
                throw new BuildFailure("Nobody's rights to use: the person who started this build (for a webhook, who set the app's source) no longer exists. Set the source again.");
            db.PersonalAccessTokens.Add(pat);
            await db.SaveChangesAsync(shutdown);
            cgroup = BuildCgroup.Create(o.Builds.CgroupName, build.Id, limits);
            var ct = stop.Token;
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
            // The checkout, and beside it runc's state and buildah's temporary bundles: a killed build leaves
            // no container records in the machine's runc root nor bundles in /var/tmp.
            var checkout = Path.Combine(scratch, "src");
            var runtimeRoot = Path.Combine(scratch, "runc");
            Directory.CreateDirectory(Path.Combine(scratch, "tmp"));
            if (build.Source is { } source)
            {
                var addresses = await SourceUrls.CheckAddressesAsync(source, o.Builds.AllowedSourceHosts, ct);
                var uri = new Uri(source);
                output.Say($"cloning {SourceUrls.Redact(source)} ({string.Join(", ", addresses.Select(a => a.ToString()))})");
                var port = uri.IsDefaultPort ? (uri.Scheme == "https" ? 443 : uri.Scheme == "ssh" ? 22 : 80) : uri.Port;
                string[] safe = ["-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
                    "-c", "protocol.ssh.allow=always", "-c", "http.followRedirects=false", "-c", "core.hooksPath=/dev/null",
                    "-c", $"http.curloptResolve={uri.IdnHost}:{port}:{string.Join(',', addresses.Select(a => a.ToString()))}"];
                await StepAsync(output, cgroup, "git", [.. safe, "clone", "--quiet", "--no-checkout", "--", source, checkout], GitEnv, ct);
            }
            else
            {
                await StepAsync(output, cgroup, "git", ["clone", "--quiet", "--no-checkout", Git.GitHosting.RepositoryPath(o, app.Id), checkout], GitEnv, ct);
            }
            await StepAsync(output, cgroup, "git", ["-C", checkout, "-c", "core.hooksPath=/dev/null", "checkout", "--quiet", build.Commit, "--"], GitEnv, ct);
            var dockerfile = Path.GetFullPath(Path.Combine(checkout, app.DockerfilePath));
            if (!dockerfile.StartsWith(checkout + "/", StringComparison.Ordinal) || !File.Exists(dockerfile) || new FileInfo(dockerfile).LinkTarget is not null)
                throw new BuildFailure($"There is no Dockerfile at '{app.DockerfilePath}' in commit {build.Commit[..12]}.");
            var registry = RegistryHost();
            var original = await File.ReadAllTextAsync(dockerfile, ct);
            await File.WriteAllTextAsync(dockerfile, ResolveShortNames(original, registry), ct);

            var env = Config(storage, registry);
            env["TMPDIR"] = Path.Combine(scratch, "tmp");
            var image = $"{registry}/{repository}:{build.Commit}";
            string[] networkArgs;
            if (o.Builds.Network == "isolated")
            {
                lease = await network.CreateAsync(build.Id, ct);
                networkArgs = ["--network", "ns:" + lease.Path];
            }
            else networkArgs = ["--network", "none"];
            try
            {
                await StepAsync(output, cgroup, "buildah", ["bud", "--layers", "--isolation", "oci", "--runtime", "/usr/sbin/runc", .. networkArgs,
                    "--runtime-flag", "root=" + runtimeRoot,
                    "--cgroup-parent", cgroup.Parent,   // the build's limits hold for the steps through the hierarchy, and its OOM counter sees them
                    "--tls-verify=false", "--creds", "build:" + token, "--pull", "-f", dockerfile, "-t", image, checkout], env, ct);
            }
            catch (BuildFailure f)
            {
                throw new BuildFailure(Explain(f.Message, original, registry));
            }
            var digestFile = Path.Combine(scratch, ".digest");
            await StepAsync(output, cgroup, "buildah", ["push", "--tls-verify=false", "--creds", "build:" + token, "--digestfile", digestFile,
                image, "docker://" + image], env, ct);
            var digest = (await File.ReadAllTextAsync(digestFile, ct)).Trim();
            output.Say($"pushed {repository}@{digest}; rolling out");
            await PruneAsync(app.Id, registry, repository, build.Commit, env);

            // From here on the build is done: a cancel or time limit no longer applies.
            watching.Cancel();
            // The release, the app's new image and the build's success: one transaction.
            db.ChangeTracker.Clear();
            await using (var tx = await db.Database.BeginTransactionAsync(CancellationToken.None))
            {
                var tracked = await db.Apps.FirstOrDefaultAsync(a => a.Id == app.Id, CancellationToken.None)
                    ?? throw new BuildFailure("The app was deleted during the build.");
                var release = await releases.AddAsync(tracked, team.Name, $"{repository}@{digest}",
                    $"Build #{build.Number} of {build.Commit[..12]}", build.Commit, build.Number, build.CreatedBy, CancellationToken.None);
                tracked.Image = release.Image;
                tracked.Generation++;
                tracked.UpdatedAt = clock.GetUtcNow().UtcDateTime;
                await db.SaveChangesAsync(CancellationToken.None);
                await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s
                    .SetProperty(b => b.State, BuildStates.Succeeded).SetProperty(b => b.ImageDigest, digest)
                    .SetProperty(b => b.FinishedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
                await tx.CommitAsync(CancellationToken.None);
                output.Say($"release v{release.Version}");
            }
            await placement.TryReconcileAsync([app.Id], CancellationToken.None);
        }
        catch (Exception e) when (e is BuildFailure or InvalidOperationException or IOException or UnauthorizedAccessException or OperationCanceledException or DbUpdateException)
        {
            db.ChangeTracker.Clear();
            watching.Cancel();
            await watcher;
            if (shutdown.IsCancellationRequested)
            {
                // The Api is stopping: the build is handed to the recovery (retried on a running replica).
                output.Say("the Api stopped during the build; it will be retried");
                await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s.SetProperty(b => b.HeartbeatAt, DateTime.UnixEpoch), CancellationToken.None);
                return;
            }
            var (state, reason) = cancelled ? (BuildStates.Cancelled, "Cancelled.")
                : e is OperationCanceledException ? (BuildStates.Failed, $"The build took longer than its time limit of {limits.TimeoutSeconds} s and was stopped.")
                : cgroup?.OomKilled(e.Message) == true ? (BuildStates.Failed, $"The build ran out of memory (limit {limits.MemoryMiB} MiB): {e.Message}")
                : (BuildStates.Failed, e.Message);
            LogFailed(log, repository, build.Number, state, reason);
            var requested = await db.Builds.AsNoTracking().Where(b => b.Id == build.Id).Select(b => b.Reason).FirstOrDefaultAsync(CancellationToken.None);
            if (cancelled && requested is not null) reason = requested;   // "Cancelled by …", written by the request
            await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s
                .SetProperty(b => b.State, state)
                .SetProperty(b => b.Reason, reason.Length > 1000 ? reason[..1000] : reason)
                .SetProperty(b => b.FinishedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
            output.Say($"{state.ToLowerInvariant()}: {reason}");
        }
        finally
        {
            watching.Cancel();
            await watcher;
            if (cgroup is not null) await cgroup.KillAndRemoveAsync();
            if (lease is not null) await lease.DisposeAsync();
            await db.PersonalAccessTokens.Where(t => t.Id == pat.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>
    /// The app's layer cache keeps the images of its last two successful builds (and their cached steps):
    /// older ones are removed, so the cache does not grow with every build. Best effort.
    /// </summary>
    private async Task PruneAsync(Guid app, string registry, string repository, string commit, Dictionary<string, string> env)
    {
        var keep = await db.Builds.AsNoTracking().Where(b => b.AppId == app && b.State == BuildStates.Succeeded)
            .OrderByDescending(b => b.Number).Select(b => b.Commit).Take(1).ToListAsync(CancellationToken.None);
        keep.Add(commit);
        var listed = await Exec.RunAsync("buildah", ["images", "--noheading", "--format", "{{.Name}}:{{.Tag}}"], CancellationToken.None, env);
        var prefix = $"{registry}/{repository}:";
        foreach (var image in listed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (image.StartsWith(prefix, StringComparison.Ordinal) && !keep.Contains(image[prefix.Length..]))
                await Exec.RunAsync("buildah", ["rmi", image], CancellationToken.None, env);
    }

    private static readonly Dictionary<string, string> GitEnv = new()
    {
        ["GIT_TERMINAL_PROMPT"] = "0", ["GIT_CONFIG_NOSYSTEM"] = "1", ["HOME"] = "/nonexistent",
        ["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
    };

    /// <summary>Every second: the heartbeat, and whether someone asked to cancel (or deleted the app).</summary>
    private async Task WatchAsync(Guid build, Action cancel, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();   // its own: the build's context is busy elsewhere
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                try
                {
                    // One statement: the heartbeat (while Running), and no row when it was cancelled or went with its app.
                    var now = clock.GetUtcNow().UtcDateTime;
                    var alive = await db.Builds.Where(b => b.Id == build && !b.CancelRequested).ExecuteUpdateAsync(s => s
                        .SetProperty(b => b.HeartbeatAt, b => b.State == BuildStates.Running ? now : b.HeartbeatAt), ct);
                    if (alive == 0)
                    {
                        cancel();
                        return;
                    }
                }
                catch (Exception e) when (e is DbUpdateException or System.Data.Common.DbException or InvalidOperationException)
                {
                    LogWatchFailed(log, e.Message);   // a busy database: the next tick tries again
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private sealed class BuildFailure(string message) : Exception(message);

    [GeneratedRegex("""building at STEP "(?<step>[^"]+)": (?<why>.*)$""")]
    private static partial Regex FailedStep();

    [GeneratedRegex(@"docker://(?<image>[^\s:@/]+(?::\d+)?/[^\s:@]+)")]
    private static partial Regex SourceImage();

    /// <summary>buildah's last error, in words a person can act on: the Dockerfile line that failed, or the base image that is missing.</summary>
    public static string Explain(string error, string dockerfile, string registry)
    {
        if (FailedStep().Match(error) is { Success: true } m)
        {
            var step = m.Groups["step"].Value;
            var lines = dockerfile.Split('\n');
            var index = Array.FindIndex(lines, l => Normalize(l).Contains(Normalize(step), StringComparison.Ordinal) || Normalize(step).Contains(Normalize(l), StringComparison.Ordinal) && Normalize(l).Length > 4);
            var where = index >= 0 ? $"Dockerfile line {index + 1}" : "Dockerfile";
            return $"{where}: {step} — {Regex.Replace(m.Groups["why"].Value, "^(error )?while running runtime: ", "")}";
        }
        if (error.Contains("manifest unknown", StringComparison.Ordinal) || error.Contains("initializing source", StringComparison.Ordinal))
        {
            var image = SourceImage().Match(error) is { Success: true } i ? i.Groups["image"].Value.Replace(registry + "/", "") : "the base image";
            return $"The base image {image} was not found in the platform registry: push it (library/… or your team's repositories) or fix the FROM line. ({error})";
        }
        return error;
    }

    private static string Normalize(string s) => Regex.Replace(s.Trim(), @"\s+", " ");

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

    /// <summary>buildah's configuration for one app's storage (its own layer cache: no team sees another's cached steps).</summary>
    public static Dictionary<string, string> Config(string root, string registry)
    {
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, "storage.conf"),
            $"[storage]\ndriver = \"overlay\"\ngraphroot = \"{root}/storage\"\nrunroot = \"{root}/run\"\n");
        File.WriteAllText(Path.Combine(root, "registries.conf"),
            $"unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n");
        File.WriteAllText(Path.Combine(root, "containers.conf"), "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n");
        return StorageEnv(root);
    }

    /// <summary>The environment that points buildah at an app's storage, as the app's builds configured it.</summary>
    private static Dictionary<string, string> StorageEnv(string root) => new()
    {
        ["CONTAINERS_STORAGE_CONF"] = Path.Combine(root, "storage.conf"),
        ["CONTAINERS_REGISTRIES_CONF"] = Path.Combine(root, "registries.conf"),
        ["CONTAINERS_CONF"] = Path.Combine(root, "containers.conf"),
    };

    /// <summary>Removes buildah's working containers from an app's storage (those a killed build left); its images stay as the cache.</summary>
    public static async Task RemoveWorkingContainersAsync(PlatformOptions options, Guid app)
    {
        var storage = StoragePath(options, app);
        if (Directory.Exists(storage)) await Exec.RunAsync("buildah", ["rm", "--all"], CancellationToken.None, StorageEnv(storage));
    }

    /// <summary>Removes an app's whole layer cache (the app was deleted).</summary>
    public static async Task RemoveStorageAsync(PlatformOptions options, Guid app)
    {
        var storage = StoragePath(options, app);
        if (!Directory.Exists(storage)) return;
        await RemoveWorkingContainersAsync(options, app);
        await Exec.RunAsync("buildah", ["rmi", "--all", "--force"], CancellationToken.None, StorageEnv(storage));
        try { Directory.Delete(storage, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Runs one step inside the build's cgroup (a shell joins it, then execs the step) with its output appended to
    /// the build log as it comes; a failure names the step's last error. Cancelling kills the step's processes.
    /// </summary>
    private static async Task StepAsync(BuildLog output, BuildCgroup? cgroup, string file, string[] args, Dictionary<string, string>? env, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(cgroup is null ? "exec \"$@\"" : string.Join("; ", cgroup.ProcsFiles.Select(f => $"echo $$ > {f}")) + "; exec \"$@\"");
        psi.ArgumentList.Add("step");
        psi.ArgumentList.Add(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        string? last = null;
        var killed = false;
        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
            {
                if (line.Contains("plat_", StringComparison.Ordinal)) continue;   // never a token in a log
                output.Step(line);
                if (line.Contains("error", StringComparison.OrdinalIgnoreCase)) last = line;
                if (line.Contains("exited on killed", StringComparison.Ordinal) || line.Contains("signal: killed", StringComparison.Ordinal)) killed = true;
            }
        }
        var pumps = Task.WhenAll(Pump(process.StandardOutput), Pump(process.StandardError));
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            if (cgroup is not null) await cgroup.KillAndRemoveAsync();
            throw;
        }
        await pumps;
        if (process.ExitCode != 0)
            throw new BuildFailure((last ?? $"{file} {args.FirstOrDefault(a => !a.StartsWith('-') && !a.Contains('='))} exited with {process.ExitCode}")
                + (killed ? " (the step was killed)" : ""));
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Warning, Message = "Build #{Number} of {Repository} {State}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string repository, int number, string state, string reason);

    [LoggerMessage(EventId = 71, Level = LogLevel.Warning, Message = "Build heartbeat failed: {Reason}")]
    private static partial void LogWatchFailed(ILogger logger, string reason);
}
