using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using static Platform.Cli.Commands;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>
/// <c>git remote</c>: the app's push remote, added to the repository in the current folder with this CLI as its
/// credential helper, so <c>git push platform main</c> works without pasting a token. The helper answers only for the
/// Api the CLI is signed in to (same scheme, host and port), with a personal access token made for git on this machine
/// (the Api's git accepts tokens as the Basic password); nothing for any other host.
/// </summary>
public static class GitCommands
{
    public static Command Git(TextWriter stdout)
    {
        var app = Commands.AppArgument();
        var add = new Option<bool>("--add") { Description = "Add (or update) the remote in the git repository of the current folder, with this CLI as its credential helper" };
        var name = new Option<string>("--name") { Description = "The remote's name", DefaultValueFactory = _ => "platform" };
        var remote = new Command("remote", """
            The app's git remote; --add puts it in the current repository with a credential helper, so a push needs no token.

            Examples:
              platform git remote site
              platform git remote site --add && git push platform main
            """) { app, add, name };
        remote.With(stdout, async (c, ct) =>
        {
            var a = await c.Api.GetAsync(c.App(c.Parse.GetValue(app)!), ct);
            var url = S(a, "gitUrl") ?? throw new CliException($"{S(a, "name")} runs an image; only apps created without one have a git repository.");
            if (!c.Parse.GetValue(add))
            {
                c.Out.Say(url, new { url });
                return;
            }
            var remoteName = c.Parse.GetValue(name)!;
            var exists = (await GitAsync(["remote", "get-url", remoteName], ct)).Code == 0;
            await CheckedGitAsync(exists ? ["remote", "set-url", remoteName, url] : ["remote", "add", remoteName, url], ct);
            var origin = new Uri(url).GetLeftPart(UriPartial.Authority);
            // An empty helper first resets the list for this origin, so no global helper (a plain-text `store`) also
            // receives the token after a push; then ours.
            await CheckedGitAsync(["config", "--local", "--replace-all", $"credential.{origin}.helper", ""], ct);
            await CheckedGitAsync(["config", "--local", "--add", $"credential.{origin}.helper", HelperCommand()], ct);
            c.Out.Say($"Remote {remoteName} → {url}; push with: git push {remoteName} main", new { remote = remoteName, url });
        });

        // git's credential protocol (gitcredentials(7)): attributes on stdin, answer on stdout. Hidden from help.
        var operation = new Argument<string>("operation") { Description = "get, store or erase" };
        var credential = new Command("credential", "git's credential helper (set by `platform git remote --add`).") { operation };
        credential.Hidden = true;
        credential.With(stdout, async (c, ct) =>
        {
            if (c.Parse.GetValue(operation) != "get") return;   // store and erase: the token lives in the profile
            var asked = new Dictionary<string, string>();
            while (await Console.In.ReadLineAsync(ct) is { Length: > 0 } line)
                if (line.IndexOf('=') is var at and > 0) asked[line[..at]] = line[(at + 1)..];
            var api = c.Api.BaseAddress;
            var origin = $"{api.Scheme}://{api.Authority}";
            if (!asked.TryGetValue("protocol", out var protocol) || !asked.TryGetValue("host", out var host)
                || !string.Equals($"{protocol}://{host}", origin, StringComparison.OrdinalIgnoreCase))
                return;   // another host: no answer, git asks elsewhere
            var token = await GitTokenAsync(c, ct);
            c.Out.Out.Write($"username=platform\npassword={token}\n");
        });
        return new Command("git", "The app's git remote, and the credential helper that lets git push without a token.") { remote, credential };
    }

    /// <summary>The token git sends: the personal access token signed in with, else one made for git on this machine (and remade when it expires).</summary>
    private static async Task<string> GitTokenAsync(Context c, CancellationToken ct)
    {
        if (c.Api.PersonalToken is { } pat) return pat;
        if (!c.Api.UsesProfile) throw new CliException($"Not signed in to {c.Api.BaseAddress}: run `platform login` for it.");
        if (c.Profile is { GitToken: { } kept, GitTokenApi: { } at } && at == c.Profile.Api && c.Profile.GitTokenEmail == c.Profile.Email
            && c.Profile.GitTokenExpiresAt > DateTimeOffset.UtcNow.AddDays(1))
            return kept;
        var made = await c.Api.SendAsync(HttpMethod.Post, "api/v1/me/tokens", new { name = $"git on {Environment.MachineName}", expiresInDays = 90 }, ct);
        c.Profile.GitToken = S(made, "token");
        c.Profile.GitTokenId = S(made, "id");
        (c.Profile.GitTokenApi, c.Profile.GitTokenEmail) = (c.Profile.Api, c.Profile.Email);
        c.Profile.GitTokenExpiresAt = DateTimeOffset.TryParse(S(made, "expiresAt"), out var e) ? e : DateTimeOffset.UtcNow.AddDays(90);
        Config.Save(c.Profile);
        return c.Profile.GitToken!;
    }

    /// <summary>Revokes the token made for git (best effort: while the sign-in it was made under still works) and forgets it.</summary>
    public static async Task ForgetGitTokenAsync(Context c, CancellationToken ct)
    {
        if (c.Profile is { GitTokenId: { } id, GitTokenApi: { } at } && c.Profile.Api == at && c.Profile.AccessToken is not null)
        {
            try
            {
                using var api = new ApiClient(c.Profile, at);
                if (api.UsesProfile) await api.SendAsync(HttpMethod.Delete, $"api/v1/me/tokens/{E(id)}", null, ct);
            }
            catch (Exception e) when (e is CliException or HttpRequestException or IOException)
            {
                // The old Api away or the old sign-in expired: the new sign-in goes on; the token expires on its own.
                Console.Error.WriteLine($"The token made for git could not be revoked ({e.Message}); revoke it in the Portal (Tokens).");
            }
        }
        (c.Profile.GitToken, c.Profile.GitTokenId, c.Profile.GitTokenExpiresAt, c.Profile.GitTokenApi, c.Profile.GitTokenEmail) = (null, null, null, null, null);
    }

    /// <summary>How git should run this CLI: the tool's own executable, or <c>dotnet platform.dll</c> when run that way.</summary>
    private static string HelperCommand()
    {
        static string Q(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        var process = Environment.ProcessPath ?? "platform";
        var self = typeof(GitCommands).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? $"!{Q(process)} {Q(self)} git credential" : $"!{Q(process)} git credential";
    }

    private static async Task<(int Code, string Output)> GitAsync(string[] args, CancellationToken ct)
    {
        var info = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            var output = await p.StandardOutput.ReadToEndAsync(ct) + await p.StandardError.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            return (p.ExitCode, output.Trim());
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new CliException("git is not installed (or not on PATH).");
        }
    }

    private static async Task CheckedGitAsync(string[] args, CancellationToken ct)
    {
        var (code, output) = await GitAsync(args, ct);
        if (code != 0) throw new CliException($"git {args[0]} failed: {output}");
    }
}
