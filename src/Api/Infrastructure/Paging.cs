using Microsoft.AspNetCore.Http.HttpResults;

namespace Platform.Api.Infrastructure;

/// <summary>Keyset pagination: <c>limit</c> (1–500, default 100) and a cursor from the previous page's <c>next</c>.</summary>
public static class Paging
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;

    public static ProblemHttpResult? Check(int? limit) =>
        limit is { } l && (l < 1 || l > MaxLimit)
            ? Problems.Validation("limit", $"must be between 1 and {MaxLimit} (got {l}).")
            : null;

    public static int Take(int? limit) => limit ?? DefaultLimit;

    /// <summary>Pages a name-ordered query: items after <paramref name="after"/>, and the next cursor.</summary>
    public static (List<T> Items, string? Next) Split<T>(List<T> rows, int take, Func<T, string> key) =>
        rows.Count > take ? (rows.Take(take).ToList(), key(rows[take - 1])) : (rows, null);
}
