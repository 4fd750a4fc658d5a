using System.Diagnostics.Metrics;
using Microsoft.EntityFrameworkCore;
using Platform.Api.Access;
using Platform.Data;

namespace Platform.Api.Audit;

/// <summary>
/// Records every attempted change (who, what, target — by kind and name, <see cref="AuditTargets"/> —, the
/// request path, when, outcome) after its handler ran, for all
/// mutating endpoints at once, so that no new endpoint can forget it. Reads are not recorded.
/// </summary>
public sealed class AuditFilter(PlatformDbContext db, TimeProvider clock, ILogger<AuditFilter> log) : IEndpointFilter
{
    /// <summary>Set by a handler whose team is not in its route (team creation) to file the event under it.</summary>
    public const string TeamItem = "platform.audit.team";

    private static readonly Meter Meter = new("Platform.Api");
    private static readonly Counter<long> Changes = Meter.CreateCounter<long>("platform.audit.events", description: "Changes attempted through the REST API, by outcome");

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method))
            return await next(context);

        object? result;
        int status;
        try
        {
            result = await next(context);
            status = StatusOf(result) ?? http.Response.StatusCode;
        }
        catch (Exception e)
        {
            // What the exception handler will answer: a unique-index race is the client's 409, not an error.
            var answered = e is DbUpdateException db && Infrastructure.ProblemExceptionHandler.IsUniqueViolation(db) ? 409 : 500;
            await RecordAsync(http, answered, TargetOf(context, null));
            throw;
        }
        await RecordAsync(http, status, TargetOf(context, result));
        return result;
    }

    private static string TargetOf(EndpointFilterInvocationContext context, object? result) =>
        Truncate(new string(AuditTargets.Describe(k => context.HttpContext.GetRouteValue(k) as string, context.Arguments, result)
            .Select(c => char.IsControl(c) ? '?' : c).ToArray()), 400);

    private async Task RecordAsync(HttpContext http, int status, string target)
    {
        var caller = http.Items[AccessService.CallerItem] as Caller;
        var teamName = http.GetRouteValue("team") as string ?? http.Items[TeamItem] as string;
        var outcome = status switch
        {
            < 400 => "success",
            401 or 403 or 404 => "denied",
            < 500 => "rejected",
            _ => "error",
        };
        try
        {
            // A fresh context: the handler's may hold a failed change that must not be saved now.
            db.ChangeTracker.Clear();
            Guid? teamId = teamName is null ? null
                : await db.Teams.Where(t => t.Name == teamName).Select(t => (Guid?)t.Id).FirstOrDefaultAsync(CancellationToken.None);
            db.AuditEvents.Add(new AuditEvent
            {
                At = clock.GetUtcNow().UtcDateTime,
                ActorId = caller?.UserId,
                ActorEmail = caller?.Email,
                Action = ActionName(http),
                TeamId = teamId,
                Target = target,
                RequestPath = Truncate(http.Request.Path.Value ?? "", 400),
                Outcome = outcome,
                Status = status,
            });
            await db.SaveChangesAsync(CancellationToken.None);
            Changes.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
        }
        catch (Exception e) when (e is DbUpdateException or InvalidOperationException)
        {
            AuditLog.Failed(log, e, ActionName(http));
        }
    }

    /// <summary>The status a typed result will write, looking through <c>Results&lt;…&gt;</c> unions.</summary>
    private static int? StatusOf(object? result) => result switch
    {
        INestedHttpResult nested => StatusOf(nested.Result),
        IStatusCodeHttpResult { StatusCode: { } s } => s,
        _ => null,
    };

    private static string ActionName(HttpContext http) =>
        http.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName
        ?? $"{http.Request.Method} {http.Request.Path}";

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];
}

internal static partial class AuditLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "Could not record the audit event of {Action}")]
    public static partial void Failed(ILogger logger, Exception exception, string action);
}
