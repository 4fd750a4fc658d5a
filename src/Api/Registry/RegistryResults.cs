namespace Platform.Api.Registry;

/// <summary>Response shapes the spec's sections share: a created resource, and <c>n</c>/<c>last</c> paging.</summary>
public static class RegistryResults
{
    /// <summary>201 with the content's <c>Location</c> and digest (a blob committed or mounted, a manifest stored).</summary>
    public static IResult Created(HttpContext http, string location, string digest)
    {
        http.Response.Headers.Location = location;
        http.Response.Headers["Docker-Content-Digest"] = digest;
        return Results.StatusCode(201);
    }

    /// <summary>Reads <c>n</c> (1–1000, 100 when absent) and <c>last</c>; false when <c>n</c> is not valid.</summary>
    public static bool TryPage(HttpContext http, out int n, out string? last)
    {
        last = http.Request.Query["last"].ToString() is { Length: > 0 } l ? l : null;
        n = 100;
        var raw = http.Request.Query["n"].ToString();
        return raw.Length == 0 || (int.TryParse(raw, out n) && n is >= 1 and <= 1000);
    }

    /// <summary>Given up to n + 1 names read, keeps n and links the next page (<c>last</c> = the last name kept) when there was more.</summary>
    public static void LinkNext(HttpContext http, List<string> names, int n, string path)
    {
        if (names.Count <= n) return;
        names.RemoveAt(n);
        http.Response.Headers.Link = $"<{path}&last={Uri.EscapeDataString(names[^1])}>; rel=\"next\"";
    }
}
