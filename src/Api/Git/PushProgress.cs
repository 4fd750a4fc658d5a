using System.Text;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Builds;
using Platform.Api.Infrastructure;
using Platform.Api.Rollouts;
using Platform.Data;

namespace Platform.Api.Git;

/// <summary>
/// <c>git push</c> that follows what it started, as Heroku's does: after receive-pack's own answer (the refs it
/// moved) and before its closing flush, the build's log and then the rollout's progress go to the pushing client
/// on git's progress band, which git prints as <c>remote: …</c> lines as they come. A build or rollout that did
/// not succeed ends on git's error band, so the push exits non-zero (the branch has moved all the same: the
/// refs were updated before the build began). Ctrl-C stops following, not the build. Pushes with
/// <c>git push -o no-follow</c>, and clients that cannot demultiplex bands, get git's answer alone.
/// </summary>
public sealed class PushProgress(Stream body, TimeProvider clock, CancellationToken ct)
{
    /// <summary>The longest a build may wait for a worker while a push follows it; past this the push ends with how to follow it.</summary>
    public static readonly TimeSpan QueuedPatience = TimeSpan.FromMinutes(10);

    // A band packet carries at most 65 515 bytes with side-band-64k; lines are cut well below that.
    private const int MaxLine = 8000;

    /// <summary>A line on the progress band (git prints it as "remote: …").</summary>
    public Task SayAsync(string line) => WriteAsync(2, line);

    /// <summary>A line on the error band: git prints it and the push exits non-zero.</summary>
    public Task FailAsync(string line) => WriteAsync(3, line);

    /// <summary>The flush that ends receive-pack's answer, held back until the following is done.</summary>
    public async Task EndAsync()
    {
        await body.WriteAsync("0000"u8.ToArray(), ct);
        await body.FlushAsync(ct);
    }

    /// <summary>
    /// An empty progress packet, as receive-pack's own keep-alive: git prints nothing, and a proxy between it and the
    /// Api with an idle timeout (nginx's and most load balancers' 60 s) sees traffic while a step or a rollout is quiet.
    /// </summary>
    public async Task KeepAliveAsync()
    {
        await body.WriteAsync("0005\u0002"u8.ToArray(), ct);
        await body.FlushAsync(ct);
    }

    private async Task WriteAsync(byte band, string line)
    {
        var text = Printable(line.Length > MaxLine ? line[..MaxLine] + "…" : line);
        var payload = Encoding.UTF8.GetBytes(text + "\n");
        var packet = new byte[5 + payload.Length];
        Encoding.ASCII.GetBytes((packet.Length).ToString("x4", System.Globalization.CultureInfo.InvariantCulture), packet);
        packet[4] = band;
        payload.CopyTo(packet, 5);
        await body.WriteAsync(packet, ct);
        await body.FlushAsync(ct);
    }

    /// <summary>
    /// The line as a terminal may show it: control characters (escape sequences a build could print to rewrite the
    /// pusher's screen, set its title or its clipboard; a bare carriage return) become '?', tabs stay.
    /// </summary>
    public static string Printable(string line)
    {
        if (!line.Any(c => char.IsControl(c) && c != '\t')) return line;
        return string.Create(line.Length, line, (span, source) =>
        {
            for (var i = 0; i < source.Length; i++) span[i] = char.IsControl(source[i]) && source[i] != '\t' ? '?' : source[i];
        });
    }

    /// <summary>
    /// Follows build <paramref name="build"/> of <paramref name="app"/> to its end, then the rollout of the release it
    /// made, saying each step; returns once both ended (or the push's client went away).
    /// </summary>
    public async Task FollowAsync(PlatformDbContext db, DataLayout layout, Hangfire.JobStorage jobs, App app, Build build, string appUrl, string logsHint)
    {
        await SayAsync($"Build #{build.Number} of {build.Commit[..12]} queued; following it here (Ctrl-C stops following, not the build).");
        // No replica runs build workers (Platform:Builds:Workers 0 everywhere): nothing to wait for.
        if (!jobs.GetMonitoringApi().Servers().Any(s => s.Queues.Contains("builds")))
        {
            await SayAsync($"No build worker is running on any Api replica, so the build waits in the queue. Follow it with: {logsHint}");
            return;
        }
        var quietSeconds = 0;
        var queuedSince = clock.GetUtcNow();
        var said = BuildStates.Queued;
        var state = await BuildLogFollower.FollowAsync(db, build.Id, layout.BuildLog(build.Id), 0, async (lines, _) =>
        {
            quietSeconds = 0;
            foreach (var line in lines) await SayAsync(line.TrimEnd('\r'));
        }, async now =>
        {
            if (now != said && now == BuildStates.Queued) queuedSince = clock.GetUtcNow();   // queued again (its replica was lost)
            said = now;
            if (now == BuildStates.Queued && clock.GetUtcNow() - queuedSince > QueuedPatience)
            {
                await SayAsync($"Build #{build.Number} is still waiting for a free build worker. Follow it with: {logsHint}");
                return false;
            }
            // A newer build of the app (a later push, a webhook, a build started by hand) ends this following; the build goes on.
            if (await db.Builds.AsNoTracking().AnyAsync(b => b.AppId == app.Id && b.Number > build.Number, ct))
            {
                await SayAsync($"A newer build of {app.Name} was queued; this push stops following build #{build.Number} (it goes on). Follow it with: {logsHint}");
                return false;
            }
            if (++quietSeconds % 60 == 0) await SayAsync($"… {(now == BuildStates.Queued ? "waiting for a build worker" : "building")}, no output for {quietSeconds / 60} min");
            else if (quietSeconds % 15 == 0) await KeepAliveAsync();
            return true;
        }, ct);
        if (!BuildStates.IsFinished(state)) return;
        if (state != BuildStates.Succeeded)
        {
            var reason = await db.Builds.AsNoTracking().Where(b => b.Id == build.Id).Select(b => b.Reason).FirstAsync(ct);
            await FailAsync($"Build #{build.Number} {state.ToLowerInvariant()}" + (reason is null ? "" : $": {reason}"));
            return;
        }

        // The release the build made, and its rollout.
        var version = await db.Releases.AsNoTracking().Where(r => r.AppId == app.Id && r.BuildNumber == build.Number)
            .OrderByDescending(r => r.Version).Select(r => (int?)r.Version).FirstOrDefaultAsync(ct);
        if (version is null)
        {
            await SayAsync($"Build #{build.Number} succeeded.");
            return;
        }
        var rollout = await db.Rollouts.AsNoTracking().Where(r => r.AppId == app.Id && r.ReleaseVersion == version)
            .OrderByDescending(r => r.Generation).FirstOrDefaultAsync(ct);
        if (rollout is null)
        {
            await SayAsync($"Release v{version} made.");
            return;
        }
        await SayAsync($"Release v{version}: rolling out generation {rollout.Generation}.");
        string? last = null;
        var quiet = 0;
        while (true)
        {
            var r = await db.Rollouts.AsNoTracking().FirstOrDefaultAsync(x => x.Id == rollout.Id, ct);
            var current = await db.Apps.AsNoTracking().FirstOrDefaultAsync(a => a.Id == app.Id, ct);
            if (r is null || current is null)
            {
                await SayAsync($"{app.Name} was deleted meanwhile.");
                return;
            }
            var response = await RolloutsApi.ToResponseAsync(r, current, db, ct);
            var line = $"{response.New.Ready}/{response.New.Total} new instance(s) ready, {response.Old.Ready}/{response.Old.Total} old"
                + (response.Pace is { } pace ? $" ({pace})" : "");
            if (r.State == RolloutStates.Succeeded)
            {
                await SayAsync($"Released v{version}: {appUrl}");
                return;
            }
            // A later push, deploy or change took over (the platform cancels the older rollout as superseded): not a failure.
            // A rollback of this very generation is a newer generation too, but that one is the rollout failing.
            if (await db.Rollouts.AsNoTracking().AnyAsync(x => x.AppId == app.Id && x.Generation > r.Generation && x.RollbackOf != r.Generation, ct))
            {
                await SayAsync($"Release v{version}'s rollout was superseded by a newer change of {app.Name}; see it with: platform apps show {app.Name}");
                return;
            }
            if (r.State != RolloutStates.Progressing)
            {
                await FailAsync($"The rollout of v{version} ended {r.State}" + (r.Message is null ? "" : $": {r.Message}"));
                return;
            }
            // The rollout outlived its own deadline (the platform ends it there): stop waiting for it.
            if (clock.GetUtcNow().UtcDateTime > r.DeadlineAt + TimeSpan.FromMinutes(2))
            {
                await SayAsync($"The rollout is past its deadline; see it with: platform apps show {app.Name}");
                return;
            }
            if (line != last) await SayAsync(line);
            else if (++quiet % 15 == 0) await KeepAliveAsync();
            last = line;
            await Task.Delay(TimeSpan.FromSeconds(1), clock, ct);
        }
    }
}
