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

    /// <summary>
    /// The first DNS label of an app's host name, <c>{app}-{project}-{team}</c>. '-' may appear inside names,
    /// so two apps can spell the same label (app <c>shop-prod</c> in project <c>acme</c> of team <c>corp</c>, app
    /// <c>shop</c> in project <c>prod</c> of team <c>acme-corp</c>): the Api keeps it unique platform-wide.
    /// </summary>
    public static string HostLabel(string app, string project, string team) => $"{app}-{project}-{team}".ToLowerInvariant();

    /// <summary>How long an app's name may be in this project so that its host label stays one DNS label (at most 0).</summary>
    public static int MaxAppNameLength(string project, string team) => MaxLabelLength - project.Length - team.Length - 2;

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
