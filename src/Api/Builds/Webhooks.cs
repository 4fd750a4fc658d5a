using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>Webhook secrets at rest: protected with the Api's data-protection keys (HMAC checks need them in clear).</summary>
public sealed class WebhookSecrets(IDataProtectionProvider provider)
{
    private readonly IDataProtector protector = provider.CreateProtector("Platform.Webhooks.v1");

    public static string New() => "whsec_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));

    public string Protect(string secret) => protector.Protect(secret);

    public string? Unprotect(string? stored)
    {
        if (stored is null) return null;
        try { return protector.Unprotect(stored); }
        catch (CryptographicException) { return null; }
    }
}

/// <summary>
/// <c>POST /hooks/{team}/{project}/{app}</c>: push events of a repository hosted elsewhere. GitHub signs the
/// body (<c>X-Hub-Signature-256: sha256=HMAC(secret, body)</c>), GitLab sends the secret (<c>X-Gitlab-Token</c>);
/// either is compared in constant time. Anything unsigned, wrongly signed, or for an unknown app is 401 with
/// nothing queued (unknown apps are not told apart, so the endpoint reveals nothing). A push to the app's branch
/// queues a build of its head commit, cloned from the app's source URL; other events and branches are
/// acknowledged and ignored.
/// </summary>
public static partial class Webhooks
{
    private const int MaxBody = 1024 * 1024;

    public static IEndpointRouteBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        app.MapPost("/hooks/{team}/{project}/{app}", ReceiveAsync).AllowAnonymous().DisableAntiforgery().ExcludeFromDescription();
        return app;
    }

    private static async Task<IResult> ReceiveAsync(
        string team, string project, string app, HttpContext http, PlatformDbContext db, WebhookSecrets secrets, BuildQueue queue, ILoggerFactory logs, CancellationToken ct)
    {
        var log = logs.CreateLogger("Platform.Api.Builds.Webhooks");
        var body = await ReadBodyAsync(http.Request, ct);
        if (body is null) return Results.Problem(statusCode: 413, title: "The payload is larger than 1 MiB.");

        var target = await db.Apps.Include(a => a.Project).ThenInclude(p => p!.Team)
            .FirstOrDefaultAsync(a => a.Name == app && a.Project!.Name == project && a.Project.Team!.Name == team, ct);
        var secret = secrets.Unprotect(target?.WebhookSecret);
        var github = http.Request.Headers["X-Hub-Signature-256"].ToString();
        var gitlab = http.Request.Headers["X-Gitlab-Token"].ToString();
        var valid = secret is not null && target!.SourceUrl is not null &&
            (github.Length > 0 ? GitHubSignatureMatches(github, secret, body) : gitlab.Length > 0 && FixedEquals(gitlab, secret));
        if (!valid)
        {
            LogRefused(log, team, project, app);
            return Results.Problem(statusCode: 401, title: "Unauthorized",
                detail: "No app with a webhook at this address, or the signature (X-Hub-Signature-256) or token (X-Gitlab-Token) does not match its secret.");
        }

        var @event = http.Request.Headers["X-GitHub-Event"].ToString() is { Length: > 0 } g ? g : http.Request.Headers["X-Gitlab-Event"].ToString();
        if (@event is "ping") return Results.Ok(new { message = "pong" });
        if (@event is not ("push" or "Push Hook"))
            return Results.Accepted(value: new { message = $"Event '{@event}' ignored: only push events build." });

        string? @ref, commit;
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            @ref = root.TryGetProperty("ref", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            commit = root.TryGetProperty("after", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()
                : root.TryGetProperty("checkout_sha", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        }
        catch (JsonException)
        {
            return Problems.Validation("body", "must be a JSON push event.");
        }
        if (@ref != "refs/heads/" + target!.Branch)
            return Results.Accepted(value: new { message = $"Push to '{@ref}' ignored: the app builds '{target.Branch}'." });
        if (commit is null || !BuildQueue.IsCommitId(commit))
            return Problems.Validation("after", "must be the pushed commit's id (40 or 64 hexadecimal digits).");
        if (commit.All(ch => ch == '0'))
            return Results.Accepted(value: new { message = "Branch deletion ignored." });

        var build = await queue.QueueAsync(target, commit, "webhook", target.SourceUrl, target.SourceSetBy, ct);
        LogQueued(log, team, project, app, build.Number, commit);
        return Results.Accepted($"/api/v1/teams/{team}/projects/{project}/apps/{app}/builds/{build.Number}",
            new { build = build.Number, commit });
    }

    public static bool GitHubSignatureMatches(string header, string secret, byte[] body)
    {
        if (!header.StartsWith("sha256=", StringComparison.Ordinal)) return false;
        var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));
        return FixedEquals(header.ToLowerInvariant(), expected);
    }

    private static bool FixedEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > MaxBody) return null;
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    [LoggerMessage(EventId = 75, Level = LogLevel.Warning, Message = "Webhook for {Team}/{Project}/{App} refused: unknown app or bad signature")]
    private static partial void LogRefused(ILogger logger, string team, string project, string app);

    [LoggerMessage(EventId = 76, Level = LogLevel.Information, Message = "Webhook queued build #{Number} of {Team}/{Project}/{App} at {Commit}")]
    private static partial void LogQueued(ILogger logger, string team, string project, string app, int number, string commit);
}
