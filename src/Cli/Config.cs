using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Cli;

/// <summary>What a sign-in leaves behind: the Api, the tokens (an OIDC pair, or a personal access token) and the target.</summary>
public sealed class Profile
{
    public string? Api { get; set; }
    public string? Email { get; set; }
    /// <summary>"device" (an OIDC access and refresh token from the device sign-in) or "token" (a personal access token).</summary>
    public string? Kind { get; set; }
    public string? AccessToken { get; set; }
    public string? RefreshToken { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    /// <summary>A personal access token the CLI made for git's pushes (the credential helper's answer) and its expiry.</summary>
    public string? GitToken { get; set; }
    public string? GitTokenId { get; set; }
    /// <summary>The Api and account the git token was made at (the helper hands it to that Api only).</summary>
    public string? GitTokenApi { get; set; }
    public string? GitTokenEmail { get; set; }
    public DateTimeOffset? GitTokenExpiresAt { get; set; }
    public string? Team { get; set; }
    public string? Project { get; set; }
}

/// <summary>
/// The profile file, private to its user: <c>$PLATFORM_CONFIG</c>, else <c>$XDG_CONFIG_HOME/platform/config.json</c>,
/// else <c>~/.config/platform/config.json</c>. Written as a new file of mode 0600 in a 0700 folder, then renamed over
/// the old one, so a token is never readable by others, not even for a moment, and a crash leaves the old file whole.
/// </summary>
public static class Config
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Path
    {
        get
        {
            if (Environment.GetEnvironmentVariable("PLATFORM_CONFIG") is { Length: > 0 } file) return file;
            var root = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } xdg
                ? xdg : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return System.IO.Path.Combine(root, "platform", "config.json");
        }
    }

    public static Profile Load()
    {
        try
        {
            return File.Exists(Path) ? JsonSerializer.Deserialize<Profile>(File.ReadAllText(Path), Json) ?? new() : new();
        }
        catch (JsonException e)
        {
            throw new CliException($"{Path} is not a profile this CLI wrote ({e.Message}); remove it and sign in again.");
        }
    }

    public static void Save(Profile profile)
    {
        var dir = System.IO.Path.GetDirectoryName(Path)!;
        if (!Directory.Exists(dir))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
            else Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        // A fresh, unguessable name created exclusively (O_EXCL): nothing another account placed there is opened.
        var temp = $"{Path}.tmp-{Guid.NewGuid():N}";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
            JsonSerializer.Serialize(stream, profile, Json);
        File.Move(temp, Path, overwrite: true);
    }
}
