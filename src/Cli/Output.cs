using System.Text.Json;

namespace Platform.Cli;

/// <summary>What commands print: a table for people, or with <c>--json</c> the Api's JSON as it came, for scripts.</summary>
public sealed class Output(TextWriter stdout, bool json)
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public bool Json { get; } = json;

    public TextWriter Out { get; } = stdout;

    /// <summary>The JSON with --json; else the table (columns and a row's cells).</summary>
    public void Print(JsonElement value, string[] columns, Func<JsonElement, IEnumerable<JsonElement>> rows, Func<JsonElement, string?[]> cells, string? empty = null)
    {
        if (Json)
        {
            Out.WriteLine(JsonSerializer.Serialize(value, Indented));
            return;
        }
        var list = rows(value).Select(r => cells(r).Select(c => c ?? "").ToArray()).ToList();
        if (list.Count == 0)
        {
            Out.WriteLine(empty ?? "(none)");
            return;
        }
        Table(columns, list);
    }

    /// <summary>One object as "name: value" lines (or its JSON).</summary>
    public void Fields(JsonElement value, params (string Name, string? Value)[] fields)
    {
        if (Json)
        {
            Out.WriteLine(JsonSerializer.Serialize(value, Indented));
            return;
        }
        var width = fields.Max(f => f.Name.Length);
        foreach (var (name, v) in fields)
            if (v is not null) Out.WriteLine($"{(name + ":").PadRight(width + 1)} {v}");
    }

    /// <summary>A sentence for people; with --json, the given value (or nothing).</summary>
    public void Say(string sentence, object? jsonValue = null)
    {
        if (!Json) Out.WriteLine(sentence);
        else if (jsonValue is not null) Out.WriteLine(JsonSerializer.Serialize(jsonValue, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
    }

    public void Table(string[] columns, List<string[]> rows)
    {
        var widths = columns.Select((c, i) => Math.Max(c.Length, rows.Max(r => i < r.Length ? r[i].Length : 0))).ToArray();
        Out.WriteLine(string.Join("  ", columns.Select((c, i) => c.ToUpperInvariant().PadRight(widths[i]))).TrimEnd());
        foreach (var r in rows)
            Out.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
    }

    public static string? S(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined)
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.ToString()
            : null;

    /// <summary>
    /// A line of a build's or an app's output as the terminal may show it: control characters (escape sequences a build
    /// or an app could print to rewrite the screen, set the title or the clipboard) become '?', tabs stay. --json keeps them.
    /// </summary>
    public static string Printable(string line)
    {
        if (!line.Any(c => char.IsControl(c) && c != '\t')) return line;
        return new string(line.Select(c => char.IsControl(c) && c != '\t' ? '?' : c).ToArray());
    }

    public static IEnumerable<JsonElement> Items(JsonElement page) =>
        page.ValueKind == JsonValueKind.Object && page.TryGetProperty("items", out var items) ? items.EnumerateArray() : [];
}
