using Microsoft.AspNetCore.Mvc;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Platform.Contracts;

namespace Platform.Api.Infrastructure;

/// <summary>RFC 9457 problem details for every expected failure, each naming the field at fault.</summary>
public static class Problems
{
    public static ProblemHttpResult Validation(string field, string message) =>
        Validation(new Dictionary<string, string[]> { [field] = [message] });

    public static ProblemHttpResult Validation(IDictionary<string, string[]> errors) =>
        TypedResults.Problem(new HttpValidationProblemDetails(errors)
        {
            Status = StatusCodes.Status422UnprocessableEntity,
            Type = ProblemTypes.Validation,
            Title = "The request is not valid.",
            Detail = string.Join(" ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")),
        });

    public static ProblemHttpResult Conflict(string field, string message, string title = "The name is taken.") =>
        TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [message] })
        {
            Status = StatusCodes.Status409Conflict,
            Type = ProblemTypes.Conflict,
            Title = title,
            Detail = message,
        });

    public static ProblemHttpResult NotFound(string what) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found.", detail: $"{what} was not found.");

    public static ProblemHttpResult Forbidden(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Forbidden.", detail: detail);

    public static ProblemHttpResult QuotaExceeded(IReadOnlyList<QuotaFigure> figures)
    {
        var problem = new ProblemDetails
        {
            Status = StatusCodes.Status422UnprocessableEntity,
            Type = ProblemTypes.QuotaExceeded,
            Title = "Quota exceeded.",
            Detail = string.Join(" ", figures.Select(f =>
                $"{f.Scope} {f.Resource}: asked {f.Asked}, used {f.Used}, limit {f.Limit}.")),
        };
        problem.Extensions["quota"] = figures.Select(f => new
        {
            resource = f.Resource, scope = f.Scope, asked = f.Asked, used = f.Used, limit = f.Limit,
        }).ToArray();
        return TypedResults.Problem(problem);
    }

    /// <summary>A validation collector: add errors per field, then turn them into one 422.</summary>
    public sealed class Errors
    {
        private readonly Dictionary<string, List<string>> _errors = [];
        public bool Any => _errors.Count > 0;

        /// <summary>How many messages were added so far (to tell whether a step added any).</summary>
        public int Count => _errors.Values.Sum(l => l.Count);

        public Errors Add(string field, string? message)
        {
            if (message is null) return this;
            if (!_errors.TryGetValue(field, out var list)) _errors[field] = list = [];
            list.Add(message);
            return this;
        }

        public Errors Name(string field, string? value) => Add(field, Names.Validate(value));

        public Errors Range(string field, long? value, long min, long max) =>
            value is { } v ? Add(field, Quantities.Range(v, min, max)) : this;

        public ProblemHttpResult ToProblem() => Validation(_errors.ToDictionary(e => e.Key, e => e.Value.ToArray()));
    }
}

/// <summary>
/// Maps what escapes a handler to problem details: a body that cannot be read (bad JSON, wrong type,
/// too large, wrong content type) is the client's 4xx naming the JSON path; a unique-key race is a
/// 409; anything else is a 500 that says nothing about internals.
/// </summary>
public sealed partial class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> log) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        var (status, title, detail, field) = exception switch
        {
            BadHttpRequestException { InnerException: JsonException json } =>
                (400, "The request body is not valid JSON for this endpoint.", Describe(json), JsonField(json.Path)),
            BadHttpRequestException bad => (bad.StatusCode, "The request could not be read.", Clean(bad.Message), null),
            JsonException json => (400, "The request body is not valid JSON for this endpoint.", Describe(json), JsonField(json.Path)),
            DbUpdateException db when IsUniqueViolation(db) => (409, "The name is taken.", "Another request created the same name first.", "name"),
            _ => (500, "An unexpected error occurred.", null, (string?)null),
        };
        if (status >= 500)
            LogUnhandled(log, exception, context.Request.Method, context.Request.Path);

        context.Response.StatusCode = status;
        var pd = field is null
            ? new ProblemDetails { Status = status, Title = title, Detail = detail }
            : new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [detail ?? title] })
            { Status = status, Title = title, Detail = detail };
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = pd, Exception = exception });
    }

    /// <summary>"$.instances" → "instances"; "$.env.FOO" → "env.FOO"; "$" → "body".</summary>
    private static string JsonField(string? path) =>
        string.IsNullOrEmpty(path) || path == "$" ? "body" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;

    // Framework messages quote internal type names: say what is wrong in the client's terms instead.
    private static string Describe(JsonException json) =>
        json.Message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal) ? "is not a known field."
        : string.IsNullOrEmpty(json.Path) || json.Path == "$" ? "The body must be a JSON object."
        : json.InnerException is FormatException || json.Message.Contains("could not be converted", StringComparison.Ordinal)
            ? "has the wrong type or format."
            : "is not valid JSON here.";

    private static string Clean(string message) => message.Length > 300 ? message[..300] : message;

    /// <summary>A unique index refused the change: a request racing another for the same name (or host).</summary>
    public static bool IsUniqueViolation(DbUpdateException e) =>
        e.InnerException?.Message.Contains("UNIQUE", StringComparison.OrdinalIgnoreCase) == true
        || e.InnerException?.GetType().Name == "PostgresException" && e.InnerException.Message.StartsWith("23505", StringComparison.Ordinal);

    [LoggerMessage(EventId = 1000, Level = LogLevel.Error, Message = "Unhandled exception on {Method} {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string method, string path);
}
