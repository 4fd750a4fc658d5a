using System.Text.RegularExpressions;

namespace Platform.Contracts;

/// <summary>
/// Name rules shared by every part: teams, projects and apps are DNS-1123 labels so that they can
/// appear in host names (<c>{app}-{project}-{team}.{domain}</c>), registry paths and file names.
/// </summary>
public static partial class Names
{
    public const int MaxLabelLength = 63;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?\\z", RegexOptions.CultureInvariant)]
    private static partial Regex Dns1123Label();

    public static bool IsDns1123Label(string? value) =>
        value is { Length: > 0 and <= MaxLabelLength } && Dns1123Label().IsMatch(value);

    /// <summary>Returns a sentence a person can act on, or null when the name is valid.</summary>
    public static string? Validate(string? value)
    {
        if (string.IsNullOrEmpty(value))
            return "is required.";
        if (value.Length > MaxLabelLength)
            return $"must be at most {MaxLabelLength} characters (got {value.Length}).";
        if (!Dns1123Label().IsMatch(value))
            return "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit.";
        return null;
    }
}
