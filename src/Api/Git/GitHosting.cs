using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;
using Platform.Host.Processes;

namespace Platform.Api.Git;

/// <summary>
/// Git hosting: each app built from source (created without <c>image</c>) has a bare repository under
/// {DataDir}/git/{app id}.git, served at <c>/git/{team}/{project}/{app}.git</c> by the real
/// <c>git http-backend</c> (smart HTTP, protocol v2, chunked and gzip bodies) as a CGI. Basic auth with
/// any user name and a personal access token; viewers fetch, developers push, everyone else sees 404.
/// </summary>
public static partial class GitHosting
{
    public static IEndpointRouteBuilder MapGitHosting(this IEndpointRouteBuilder app)
    {
        app.Map("/git/{team}/{project}/{repo}/{**path}", ServeAsync).ExcludeFromDescription().DisableAntiforgery();
        return app;
    }

    private static async Task ServeAsync(string team, string project, string repo, string? path, HttpContext http,
        PlatformDbContext db, AccessService access, GitRepositories repositories, IOptions<PlatformOptions> options, TimeProvider clock, ILoggerFactory loggers)
    {
        var log = loggers.CreateLogger("Platform.Api.Git");
        if (!repo.EndsWith(".git", StringComparison.Ordinal) || !Names.IsDns1123Label(repo[..^4]))
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var appName = repo[..^4];
        var service = http.Request.Query["service"].ToString();
        var pushing = path == "git-receive-pack" || service == "git-receive-pack";
        if (path is not ("info/refs" or "git-upload-pack" or "git-receive-pack" or "HEAD"))
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        // Basic with any user name and a personal access token, as git sends it after a 401.
        var token = PatAuthenticationHandler.ReadToken(http.Request.Headers.Authorization.ToString());
        var found = token is null ? null : await PersonalAccessTokenLookup.FindAsync(db, token, clock, http.RequestAborted);
        if (found is null)
        {
            http.Response.Headers.WWWAuthenticate = "Basic realm=\"platform git\", charset=\"UTF-8\"";
            http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await http.Response.WriteAsync("Sign in with any user name and a personal access token as the password.\n");
            return;
        }
        http.Items[AccessService.CallerItem] = new Caller(found.UserId, found.Email, found.IsPlatformAdmin);

        // Viewers fetch; developers push; a team or project the caller cannot see is 404, as in the API.
        var t = await access.TeamAsync(team, Permission.TeamRead, http.RequestAborted);
        var problem = t.Problem;
        App? app = null;
        if (problem is null)
        {
            var p = await access.ProjectAsync(t.Value!, project, pushing ? Permission.AppWrite : Permission.AppRead, http.RequestAborted);
            problem = p.Problem;
            if (problem is null)
                app = await db.Apps.AsNoTracking().FirstOrDefaultAsync(a => a.ProjectId == p.Value!.Id && a.Name == appName, http.RequestAborted);
        }
        if (problem is not null || app is null || !app.HasRepository)
        {
            http.Response.StatusCode = problem?.StatusCode ?? StatusCodes.Status404NotFound;
            await http.Response.WriteAsync(problem?.StatusCode == 403
                ? "You may fetch from this repository but not push to it (developers push).\n"
                : $"No repository at /git/{team}/{project}/{repo}.\n");
            return;
        }

        await repositories.EnsureAsync(app.Id, http.RequestAborted);
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = null;   // pushes are as large as the repository
        var receiving = path == "git-receive-pack" && HttpMethods.IsPost(http.Request.Method);
        var before = receiving ? await repositories.ResolveAsync(app.Id, "refs/heads/" + app.Branch, http.RequestAborted) : null;
        var held = await CgiAsync(http, repositories.Root, $"/{app.Id:N}.git/{path}", found.Email, pushing ? PushConfig(repositories, options.Value.Git) : null, receiving, log);
        if (!receiving) return;
        var progress = held ? new PushProgress(http.Response.Body, clock, http.RequestAborted) : null;
        try
        {
            var build = await QueueBuildAsync(http, app, before, repositories, found.UserId, team, project, clock, log);
            if (progress is not null && build is not null)
            {
                var url = Apps.AppsApi.UrlOf(app.Name, project, team, http.RequestServices, options.Value);
                await progress.FollowAsync(db, http.RequestServices.GetRequiredService<DataLayout>(), http.RequestServices.GetRequiredService<Hangfire.JobStorage>(), app, build, url,
                    $"platform builds logs {app.Name} {build.Number} -f --team {team} --project {project}");
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client went away (Ctrl-C stops following, not the build).
        }
        catch (Exception e) when (progress is not null)
        {
            LogFollowFailed(log, team, project, appName, e.Message);
            try { await progress.SayAsync("The platform stopped following the build (it goes on): " + e.GetType().Name); }
            catch (Exception again) when (again is IOException or OperationCanceledException) { }
        }
        finally
        {
            if (progress is not null)
                try { await progress.EndAsync(); } catch (Exception e) when (e is OperationCanceledException or IOException) { }
        }
    }

    /// <summary>
    /// A push that moved the default branch queues a build of that commit before git's answer ends, so the
    /// build exists once <c>git push</c> returns. Nothing here may throw: git's response has started, and a failure
    /// would abort the connection (curl's "transfer closed with outstanding read data"). A busy database is
    /// tried again; a build that still cannot be queued is logged, and the person can start it by hand.
    /// </summary>
    private static async Task<Build?> QueueBuildAsync(HttpContext http, App app, string? before, GitRepositories repositories, string userId,
        string team, string project, TimeProvider clock, ILogger log)
    {
        var appName = app.Name;
        var after = await repositories.ResolveAsync(app.Id, "refs/heads/" + app.Branch, CancellationToken.None);
        if (after is null || after == before) return null;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var build = await http.RequestServices.GetRequiredService<Builds.BuildQueue>()
                    .QueueAsync(app, after, "push", null, userId, CancellationToken.None);
                LogQueued(log, team, project, appName, build.Number, after);
                return build;
            }
            catch (Exception e) when (e is DbUpdateException or System.Data.Common.DbException or InvalidOperationException)
            {
                if (attempt == 3)
                {
                    LogQueueFailed(log, team, project, appName, after, e.Message);
                    return null;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), clock, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// What bounds a push (git's own configuration, given to receive-pack through its environment, so no tenant can
    /// change it): <c>receive.maxInputSize</c> stops a pack larger than the whole limit while it streams in (git
    /// answers "pack exceeds maximum allowed size"), so no push writes more than the limit to disk, and the platform's
    /// pre-receive hook refuses a push that would take the repository past it, with the figures. Either way git drops the push's quarantined objects and moves no ref.
    /// Push options are advertised so <c>git push -o no-follow</c> is accepted (<see cref="PushRequest"/>).
    /// </summary>
    private static Dictionary<string, string?> PushConfig(GitRepositories repositories, GitOptions options)
    {
        var max = options.MaxRepositoryMiB * 1024L * 1024;
        return new()
        {
            ["GIT_CONFIG_COUNT"] = "3",
            ["GIT_CONFIG_KEY_2"] = "receive.advertisePushOptions",
            ["GIT_CONFIG_VALUE_2"] = "true",
            ["GIT_CONFIG_KEY_0"] = "receive.maxInputSize",
            ["GIT_CONFIG_VALUE_0"] = max.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["GIT_CONFIG_KEY_1"] = "core.hooksPath",
            ["GIT_CONFIG_VALUE_1"] = repositories.Hooks,
            ["PLATFORM_GIT_MAX_BYTES"] = max.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    /// <summary>
    /// Runs <c>git http-backend</c> as a CGI: request body streamed to stdin, CGI headers parsed, the rest streamed
    /// back. No time limit (a push is as long as the repository); an aborted request kills git (the process is
    /// disposed with the request, and waiting for it is cancelled by it). With <paramref name="push"/>, the closing
    /// flush of receive-pack's answer is held back and true returned when the client follows progress (side-band,
    /// no <c>-o no-follow</c>): the caller adds the build's progress, then the flush (<see cref="PushProgress"/>).
    /// </summary>
    private static async Task<bool> CgiAsync(HttpContext http, string root, string pathInfo, string user, Dictionary<string, string?>? limits,
        bool push, ILogger log)
    {
        var env = new Dictionary<string, string?>(limits ?? [])
        {
            ["GIT_PROJECT_ROOT"] = root,
            ["GIT_HTTP_EXPORT_ALL"] = "1",
            ["PATH_INFO"] = pathInfo,
            ["REQUEST_METHOD"] = http.Request.Method,
            ["QUERY_STRING"] = http.Request.QueryString.HasValue ? http.Request.QueryString.Value![1..] : "",
            ["CONTENT_TYPE"] = http.Request.ContentType ?? "",
            ["REMOTE_USER"] = user,
            ["REMOTE_ADDR"] = http.Connection.RemoteIpAddress?.ToString() ?? "",
        };
        if (http.Request.ContentLength is { } length) env["CONTENT_LENGTH"] = length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (http.Request.Headers["Git-Protocol"].ToString() is { Length: > 0 } protocol) env["GIT_PROTOCOL"] = protocol;
        if (http.Request.Headers.ContentEncoding.ToString() is { Length: > 0 } encoding) env["HTTP_CONTENT_ENCODING"] = encoding;

        var aborted = http.RequestAborted;
        await using var process = ProcessRunner.Start(new ProcessSpec("git", ["http-backend"]) { Env = env, Timeout = Timeout.InfiniteTimeSpan });
        // The body's first bytes are kept to read what a push asked for (PushRequest).
        var prefix = push ? new MemoryStream() : null;
        var feed = Task.Run(async () =>
        {
            try
            {
                var buffer = new byte[81920];
                int n;
                while ((n = await http.Request.Body.ReadAsync(buffer, aborted)) > 0)
                {
                    if (prefix is not null && prefix.Length < PushRequest.PrefixBytes)
                        prefix.Write(buffer, 0, (int)Math.Min(n, PushRequest.PrefixBytes - prefix.Length));
                    await process.Stdin.WriteAsync(buffer.AsMemory(0, n), aborted);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException) { }
            finally { process.CloseStdin(); }
        }, CancellationToken.None);

        // CGI headers up to the blank line; "Status:" sets the code.
        var output = process.Stdout;
        var status = StatusCodes.Status200OK;
        var headers = new List<(string, string)>();
        while (true)
        {
            var line = await ReadLineAsync(output, aborted);
            if (line is null || line.Length == 0) break;
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var (name, value) = (line[..colon].Trim(), line[(colon + 1)..].Trim());
            if (name.Equals("Status", StringComparison.OrdinalIgnoreCase)) status = int.Parse(value.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            else headers.Add((name, value));
        }
        http.Response.StatusCode = status;
        foreach (var (name, value) in headers) http.Response.Headers.Append(name, value);
        var tail = push && status == StatusCodes.Status200OK ? await CopyHoldingTailAsync(output, http.Response.Body, aborted) : ((byte[] Last, bool Multiplexed)?)null;
        if (tail is null) await output.CopyToAsync(http.Response.Body, aborted);
        await feed;
        var result = await process.WaitAsync(aborted);
        if (!result.Succeeded) LogBackendFailed(log, pathInfo, result.ExitCode, result.Stderr.Trim());
        if (tail is null) return false;
        var request = PushRequest.Parse(prefix!.GetBuffer().AsSpan(0, (int)prefix.Length),
            http.Request.Headers.ContentEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase));
        // Side-band is what lets progress go beside git's answer; receive-pack ends a side-band answer with a flush.
        var follow = result.Succeeded && tail.Value.Multiplexed && tail.Value.Last.SequenceEqual("0000"u8.ToArray())
            && (request.Capabilities.Contains("side-band-64k") || request.Capabilities.Contains("side-band")) && !request.NoFollow;
        if (!follow)
        {
            await http.Response.Body.WriteAsync(tail.Value.Last, CancellationToken.None);
            await http.Response.Body.FlushAsync(CancellationToken.None);
        }
        return follow;
    }

    /// <summary>Streams <paramref name="from"/> to <paramref name="to"/> but for its last four bytes, which it returns, and
    /// whether the answer is multiplexed (its first packet on band 1, 2 or 3).</summary>
    private static async Task<(byte[] Last, bool Multiplexed)> CopyHoldingTailAsync(Stream from, Stream to, CancellationToken ct)
    {
        var buffer = new byte[65536 + 4];
        var held = 0;   // bytes at buffer's start not yet written
        var head = new List<byte>(5);
        while (true)
        {
            var n = await from.ReadAsync(buffer.AsMemory(held, buffer.Length - held), ct);
            if (n == 0) break;
            for (var i = held; i < held + n && head.Count < 5; i++) head.Add(buffer[i]);
            var total = held + n;
            if (total > 4)
            {
                await to.WriteAsync(buffer.AsMemory(0, total - 4), ct);
                await to.FlushAsync(ct);
                Buffer.BlockCopy(buffer, total - 4, buffer, 0, 4);
                held = 4;
            }
            else held = total;
        }
        var multiplexed = head.Count == 5 && head[4] is 1 or 2 or 3
            && int.TryParse(Encoding.ASCII.GetString(head.ToArray(), 0, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out _);
        return (buffer[..held], multiplexed);
    }

    /// <summary>One CGI header line, read byte by byte so the body that follows stays in the stream.</summary>
    private static async Task<string?> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (await stream.ReadAsync(one, ct) == 1)
        {
            if (one[0] == '\n') return Encoding.ASCII.GetString(bytes.ToArray()).TrimEnd('\r');
            bytes.Add(one[0]);
            if (bytes.Count > 8192) break;
        }
        return bytes.Count == 0 ? null : Encoding.ASCII.GetString(bytes.ToArray());
    }

    [LoggerMessage(EventId = 61, Level = LogLevel.Information, Message = "Push to {Team}/{Project}/{App}: build #{Number} of {Commit} queued")]
    private static partial void LogQueued(ILogger logger, string team, string project, string app, int number, string commit);

    [LoggerMessage(EventId = 62, Level = LogLevel.Error, Message = "Push to {Team}/{Project}/{App} moved it to {Commit}, but its build could not be queued: {Reason}; start it with POST …/builds")]
    private static partial void LogQueueFailed(ILogger logger, string team, string project, string app, string commit, string reason);

    [LoggerMessage(EventId = 63, Level = LogLevel.Warning, Message = "Push to {Team}/{Project}/{App}: following its build stopped: {Reason}")]
    private static partial void LogFollowFailed(ILogger logger, string team, string project, string app, string reason);

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "git http-backend for {Path} exited with {ExitCode}: {Error}")]
    private static partial void LogBackendFailed(ILogger logger, string path, int exitCode, string error);
}
