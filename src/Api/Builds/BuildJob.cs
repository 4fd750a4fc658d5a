using Hangfire;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Deployments;
using Platform.Api.Registry;
using Platform.Api.Infrastructure;
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
/// the build (<see cref="BuildClaim"/>); a build that must wait is looked at again in two seconds. Then, in
/// a cgroup with the team's memory, CPU and pids limits and under its time limit: checks the commit out in
/// a scratch folder of this attempt (<see cref="BuildWorkspace"/>), runs <c>buildah bud</c> and pushes the
/// image tagged with the commit (<see cref="Buildah"/>), removes everything it made on this machine, and
/// only then writes its outcome: a release through <see cref="DeploymentService"/> (release, the app's
/// image and the build's success in one transaction), or the reason it failed. So a build seen finished
/// has left nothing behind. It writes a heartbeat while it runs and obeys a cancel request within a
/// second or two. The build pulls and pushes as the person who started it, through a registry credential
/// scoped to the build (<see cref="RegistryAuth.BuildCredential"/>) that dies when it ends. Running it twice for one build does nothing the second time (the claim
/// finds it no longer Queued).
/// </summary>
public sealed partial class BuildJob(
    PlatformDbContext db, BuildClaim claims, LocalBuilds local, Buildah buildah, BuildUser buildUser, BuildNetwork network, DeploymentService deployments,
    IBackgroundJobClient jobs, IServer server, IServiceScopeFactory scopes, DataLayout layout, IOptions<PlatformOptions> options, RegistryAuth registryAuth,
    TimeProvider clock, ILogger<BuildJob> log)
{
    public static BuildLimits LimitsOf(TeamQuota q, BuildsOptions d) => new(
        q.BuildMemoryMiB > 0 ? q.BuildMemoryMiB : d.MemoryMiB,
        q.BuildCpuMillicores > 0 ? q.BuildCpuMillicores : d.CpuMillicores,
        q.BuildPids > 0 ? q.BuildPids : d.Pids,
        q.BuildTimeoutSeconds > 0 ? q.BuildTimeoutSeconds : d.TimeoutSeconds);

    [Queue("builds")]
    [AutomaticRetry(Attempts = 0)]
    public async Task RunAsync(Guid buildId, CancellationToken ct)
    {
        var claim = await claims.TryClaimAsync(buildId, ct);
        if (claim == BuildClaim.Outcome.Wait) jobs.Schedule<BuildJob>(j => j.RunAsync(buildId, CancellationToken.None), TimeSpan.FromSeconds(2));
        if (claim != BuildClaim.Outcome.Claimed) return;
        try
        {
            await BuildAsync(buildId, ct);
        }
        finally
        {
            local.Remove(buildId);
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
        Directory.CreateDirectory(layout.BuildLogs);

        // The registry credential of this build alone: only the platform's registry gets it (the auth file names no
        // other), it pulls bases and pushes this app's repository and nothing else, and it dies with the build.
        var credential = registryAuth.BuildCredential(build.Id, build.CreatedBy ?? "", team.Name, repository, clock.GetUtcNow().AddSeconds(limits.TimeoutSeconds + 600));

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        stop.CancelAfter(TimeSpan.FromSeconds(limits.TimeoutSeconds));
        var cancelled = false;
        using var watching = new CancellationTokenSource();
        var watcher = WatchAsync(build.Id, () => { cancelled = true; stop.Cancel(); }, watching.Token);
        BuildCgroup? cgroup = null;
        BuildNetwork.Lease? lease = null;
        BuildWorkspace? workspace = null;
        string? digest = null;
        (string State, string Reason)? failure = null;
        using var output = new BuildLog(layout.BuildLog(build.Id), o.Builds.MaxLogBytes) { MaxStepBytes = o.Builds.MaxStepOutputBytes };
        try
        {
            output.Say($"building {repository} #{build.Number} at {build.Commit} (memory {limits.MemoryMiB} MiB, CPU {limits.CpuMillicores}m, {limits.Pids} processes, {limits.TimeoutSeconds} s)");
            // The build pulls and pushes with the rights of the person who started it (for webhooks: who set the source).
            if (build.CreatedBy is null || !await db.Users.AnyAsync(u => u.Id == build.CreatedBy, shutdown))
                throw new BuildFailure("Nobody's rights to use: the person who started this build (for a webhook, who set the app's source) no longer exists. Set the source again.");
            cgroup = BuildCgroup.Create(o.Builds.CgroupName, build.Id, limits);
            var ct = stop.Token;
            DataFolderAccess.PrepareBuildWork(layout);
            workspace = BuildWorkspace.Create(layout.BuildScratch(build.Id, build.Attempts));
            await workspace.CheckOutAsync(output, cgroup, build.Source, layout.Repository(app.Id), build.Commit, o.Builds.AllowedSourceHosts, ct);
            var registry = RegistryHost();
            var (original, rewritten) = await workspace.DockerfileAsync(app.DockerfilePath, build.Commit, registry, o.Builds.UpstreamRegistries, ct);
            workspace.WriteAuthFile(registry, RegistryAuth.BuildUser, credential);
            var upstream = rewritten.Upstream;
            if (upstream.Count > 0)
            {
                var cacheCredential = registryAuth.BuildCredential(build.Id, build.CreatedBy ?? "", team.Name, repository, clock.GetUtcNow().AddSeconds(limits.TimeoutSeconds + 600), upstreamCache: true);
                foreach (var @base in upstream) await UpstreamCache.RefreshAsync(output, cgroup, workspace, @base, cacheCredential, ct);
            }

            // From here on the build account works in the scratch folder (buildah rootless: RUN's root is that account).
            var env = await buildah.ConfigureAsync(app.Id, registry, ct);
            await BuildUser.HandOverAsync(await buildUser.EnsureAsync(ct), workspace.Root, ct);
            env["TMPDIR"] = workspace.Temp;
            foreach (var (k, v) in workspace.AuthEnv) env[k] = v;
            var image = $"{registry}/{repository}:{build.Commit}";
            if (o.Builds.Network == "isolated") lease = await network.CreateAsync(build.Id, ct);
            try
            {
                await ThroughDoorAsync(output, lease, registry, "pulled the bases", netns => buildah.PullAsync(output, cgroup, workspace, env, rewritten.Pulls, netns, ct), ct);
                await buildah.BudAsync(output, cgroup, workspace, env, lease?.Path, image, ct);
            }
            catch (BuildFailure f)
            {
                throw new BuildFailure(Explain(f.Message, original, registry));
            }
            await ThroughDoorAsync(output, lease, registry, "pushed", async netns => digest = await buildah.PushAsync(output, cgroup, workspace, env, image, netns, ct), ct);
            output.Say($"pushed {repository}@{digest}; rolling out");
            // The layer cache keeps the images of the app's last two successful builds (this one included).
            var keep = await db.Builds.AsNoTracking().Where(b => b.AppId == app.Id && b.State == BuildStates.Succeeded)
                .OrderByDescending(b => b.Number).Select(b => b.Commit).Take(1).ToListAsync(CancellationToken.None);
            await buildah.PruneAsync(app.Id, registry, repository, [.. keep, build.Commit]);
        }
        catch (Exception e) when (e is BuildFailure or InvalidOperationException or IOException or UnauthorizedAccessException or OperationCanceledException or DbUpdateException or TimeoutException)
        {
            digest = null;
            db.ChangeTracker.Clear();
            watching.Cancel();
            await watcher;
            if (!shutdown.IsCancellationRequested)
                failure = cancelled ? (BuildStates.Cancelled, "Cancelled.")
                    : e is OperationCanceledException ? (BuildStates.Failed, $"The build took longer than its time limit of {limits.TimeoutSeconds} s and was stopped.")
                    : cgroup?.OomKilled(e.Message) == true ? (BuildStates.Failed, $"The build ran out of memory (limit {limits.MemoryMiB} MiB): {e.Message}")
                    : cgroup?.PidsLimitHit() == true ? (BuildStates.Failed, $"The build reached its limit of {limits.Pids} processes: {e.Message}")
                    : (BuildStates.Failed, e.Message);
        }
        finally
        {
            // From here on the build is done (a cancel or time limit no longer applies) and everything it made on
            // this machine goes before its outcome is written: a build seen finished has left nothing behind.
            watching.Cancel();
            await watcher;
            if (cgroup is not null) await cgroup.KillAndRemoveAsync();
            if (lease is not null) await lease.DisposeAsync();
            try { workspace?.Remove(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { LogCleanupFailed(log, build.Number, e.Message); }
        }

        if (digest is null && failure is null)
        {
            // The Api is stopping: the build is handed to the recovery (retried on a running replica).
            output.Say("the Api stopped during the build; it will be retried");
            await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s.SetProperty(b => b.HeartbeatAt, DateTime.UnixEpoch), CancellationToken.None);
            return;
        }
        if (digest is not null)
        {
            try
            {
                var version = await ReleaseAsync(build, team, repository, digest);
                output.Say($"release v{version}");
                return;
            }
            catch (Exception e) when (e is BuildFailure or InvalidOperationException or DbUpdateException)
            {
                db.ChangeTracker.Clear();
                failure = (BuildStates.Failed, e.Message);
            }
        }
        var (state, reason) = failure!.Value;
        LogFailed(log, repository, build.Number, state, reason);
        var requested = await db.Builds.AsNoTracking().Where(b => b.Id == build.Id).Select(b => b.Reason).FirstOrDefaultAsync(CancellationToken.None);
        if (state == BuildStates.Cancelled && requested is not null) reason = requested;   // "Cancelled by …", written by the request
        await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s
            .SetProperty(b => b.State, state)
            .SetProperty(b => b.Reason, reason.Length > 1000 ? reason[..1000] : reason)
            .SetProperty(b => b.FinishedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
        output.Say($"{state.ToLowerInvariant()}: {reason}");
    }

    /// <summary>The release, the app's new image and the build's success: one transaction, in the team's admission like every change of what an app runs.</summary>
    private async Task<int> ReleaseAsync(Build build, Team team, string repository, string digest)
    {
        db.ChangeTracker.Clear();
        await using var admission = await deployments.BeginAsync(team.Id, CancellationToken.None);
        var app = await db.Apps.FirstOrDefaultAsync(a => a.Id == build.AppId, CancellationToken.None)
            ?? throw new BuildFailure("The app was deleted during the build.");
        var release = await deployments.ApplyAsync(app, team.Name, RunSpec.Of(app),
            new Deploy($"{repository}@{digest}", $"Build #{build.Number} of {build.Commit[..12]}", build.Commit, build.Number), build.CreatedBy, CancellationToken.None);
        await db.Builds.Where(b => b.Id == build.Id).ExecuteUpdateAsync(s => s
            .SetProperty(b => b.State, BuildStates.Succeeded).SetProperty(b => b.ImageDigest, digest)
            .SetProperty(b => b.FinishedAt, clock.GetUtcNow().UtcDateTime), CancellationToken.None);
        await deployments.CommitAsync(admission, app.Id, CancellationToken.None);
        return release!.Version;
    }

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
        if (error.Contains("pinging container registry", StringComparison.Ordinal) || error.Contains("connection refused", StringComparison.Ordinal))
            return $"The build could not reach the platform's registry: {error}";
        if (error.Contains("manifest unknown", StringComparison.Ordinal) || error.Contains("initializing source", StringComparison.Ordinal))
        {
            var image = SourceImage().Match(error) is { Success: true } i ? i.Groups["image"].Value.Replace(registry + "/", "") : "the base image";
            return $"The base image {image} was not found in the platform registry: push it (library/… or your team's repositories) or fix the FROM line. ({error})";
        }
        return error;
    }

    /// <summary>
    /// Runs <paramref name="step"/> (a pull or the push) inside the build's network name-space with the registry's door
    /// open there, so the build account reaches the registry from the build network only; with no name-space
    /// (<c>Platform:Builds:Network = none</c>) in the Api's network, as the platform's registry is the only place it goes.
    /// </summary>
    private static async Task ThroughDoorAsync(BuildLog output, BuildNetwork.Lease? lease, string registry, string what, Func<string?, Task> step, CancellationToken ct)
    {
        if (lease is null)
        {
            await step(null);
            return;
        }
        var door = await RegistryDoor.OpenAsync(lease.Path, registry, ct);
        try
        {
            await step(lease.Path);
        }
        finally
        {
            await door.DisposeAsync();
        }
        output.Say($"{what} from the build's network ({door.Connections} connection(s) to the registry through its door)");
    }

    private static string Normalize(string s) => Regex.Replace(s.Trim(), @"\s+", " ");

    /// <summary>The Api's own address, where the build reaches the registry.</summary>
    private string RegistryHost()
    {
        if (options.Value.PublicUrl is { } url) return new Uri(url).Authority;
        var address = server.Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "127.0.0.1").Replace("+", "127.0.0.1").Replace("*", "127.0.0.1")).Authority;
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Warning, Message = "Build #{Number} of {Repository} {State}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string repository, int number, string state, string reason);

    [LoggerMessage(EventId = 71, Level = LogLevel.Warning, Message = "Build heartbeat failed: {Reason}")]
    private static partial void LogWatchFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 74, Level = LogLevel.Warning, Message = "Build #{Number}: its scratch folder could not be removed: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, int number, string reason);
}
