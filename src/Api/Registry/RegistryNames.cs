using System.Text.RegularExpressions;
using Platform.Contracts;

namespace Platform.Api.Registry;

/// <summary>
/// Repository names: the OCI distribution grammar, at most 255 characters, and either
/// <c>{team}/{project}/{app}[/…]</c> (the first three DNS-1123 labels) or <c>library/…</c>.
/// </summary>
public static partial class RegistryNames
{
    public const string Library = "library";

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\z")]
    private static partial Regex Grammar();

    [GeneratedRegex(@"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\z")]
    private static partial Regex TagGrammar();

    public static bool IsTag(string? tag) => tag is not null && TagGrammar().IsMatch(tag);

    public readonly record struct Parsed(string Name, bool IsLibrary, string? Team, string? Project, string? App);

    public static Parsed? Parse(string name)
    {
        if (name.Length is 0 or > 255 || !Grammar().IsMatch(name))
            return null;
        var parts = name.Split('/');
        if (parts[0] == Library)
            return parts.Length >= 2 ? new Parsed(name, true, null, null, null) : null;
        if (parts.Length < 3 || !Names.IsDns1123Label(parts[0]) || !Names.IsDns1123Label(parts[1]) || !Names.IsDns1123Label(parts[2]))
            return null;
        return new Parsed(name, false, parts[0], parts[1], parts[2]);
    }
}
