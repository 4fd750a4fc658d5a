using System.CommandLine;
using System.Text.Json;
using static Platform.Cli.Commands;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>Signing in and out, who one is, the default team and project, and listing teams and projects.</summary>
public static class AuthCommands
{
    public static IEnumerable<Command> All(TextWriter stdout)
    {
        var url = new Argument<string?>("api-url") { Description = "The Api's URL (default: the one signed in to before)", Arity = ArgumentArity.ZeroOrOne };
        var token = new Option<string?>("--token") { Description = "Sign in with a personal access token instead (for CI; PLATFORM_TOKEN does the same without a file)" };
        var login = new Command("login", """
            Sign in: prints a link and a code; approve it in a browser signed in to the Api, and the CLI keeps the tokens
            (in ~/.config/platform/config.json, mode 0600) and refreshes them.

            Examples:
              platform login https://platform.example.com
              platform login http://localhost:5080 --token plat_…
            """) { url, token };
        login.With(stdout, async (c, ct) =>
        {
            var target = (c.Parse.GetValue(url) ?? c.Parse.GetValue(ApiOption) ?? c.Profile.Api
                ?? throw new CliException("Which Api? Give its URL: `platform login https://platform.example.com`.")).TrimEnd('/');
            // A new sign-in: the git token of the previous one (maybe another Api, another account) goes first.
            await GitCommands.ForgetGitTokenAsync(c, ct);
            if (c.Profile.Api != target) (c.Profile.Team, c.Profile.Project) = (null, null);
            c.Profile.Api = target;
            (c.Profile.Kind, c.Profile.AccessToken, c.Profile.RefreshToken, c.Profile.ExpiresAt, c.Profile.Email) = (null, null, null, null, null);
            using var api = new ApiClient(c.Profile, c.Profile.Api);
            if (c.Parse.GetValue(token) is { } pat)
                (c.Profile.Kind, c.Profile.AccessToken) = ("token", pat);
            else
                await DeviceSignInAsync(api, c.Profile, c.Out, ct);
            var me = await api.GetAsync("api/v1/me", ct);
            c.Profile.Email = S(me, "email");
            Config.Save(c.Profile);
            c.Out.Say($"Signed in to {c.Profile.Api} as {c.Profile.Email}.", new { api = c.Profile.Api, email = c.Profile.Email });
        });

        var logout = new Command("logout", """
            Sign out: revokes the refresh token at the Api and forgets the tokens (a personal access token stays valid
            until revoked with `platform tokens revoke`).

            Example:
              platform logout
            """).With(stdout, async (c, ct) =>
        {
            // The token the CLI made for git goes with the sign-in (while the session can still revoke it).
            await GitCommands.ForgetGitTokenAsync(c, ct);
            if (c.Profile is { Kind: "device", RefreshToken: { } refresh, Api: { } apiUrl })
            {
                using var http = new HttpClient { BaseAddress = new Uri(apiUrl + "/") };
                try
                {
                    using var _ = await http.PostAsync("connect/revoke", new FormUrlEncodedContent(new Dictionary<string, string>
                    {
                        ["client_id"] = ApiClient.ClientId, ["token"] = refresh, ["token_type_hint"] = "refresh_token",
                    }), ct);
                }
                catch (HttpRequestException) { /* forgotten here all the same */ }
            }
            var was = c.Profile.Email;
            (c.Profile.Kind, c.Profile.AccessToken, c.Profile.RefreshToken, c.Profile.ExpiresAt, c.Profile.Email) = (null, null, null, null, null);
            Config.Save(c.Profile);
            c.Out.Say(was is null ? "Not signed in." : $"Signed out {was}.");
        });

        var whoami = new Command("whoami", """
            Who the CLI acts as, on which Api, and the team and project it targets.

            Example:
              platform whoami
            """).With(stdout, async (c, ct) =>
        {
            var me = await c.Api.GetAsync("api/v1/me", ct);
            c.Out.Fields(me, ("email", S(me, "email")), ("api", c.Api.BaseAddress.ToString().TrimEnd('/')),
                ("admin", S(me, "platformAdmin") == "True" ? "platform admin" : null),
                ("team", c.Parse.GetValue(TeamOption) ?? c.Profile.Team), ("project", c.Parse.GetValue(ProjectOption) ?? c.Profile.Project));
        });

        var target = new Command("target", """
            Set the team and project later commands act in (or show them without options).

            Examples:
              platform target --team acme --project web
              platform target
            """).With(stdout, async (c, ct) =>
        {
            var (team, project) = (c.Parse.GetValue(TeamOption), c.Parse.GetValue(ProjectOption));
            if (team is not null || project is not null)
            {
                team ??= c.Profile.Team ?? throw new CliException("Give --team with --project the first time.");
                // Both must exist and be visible to the caller: a typo is found now, not at the next command.
                if (project is not null) await c.Api.GetAsync($"api/v1/teams/{E(team)}/projects/{E(project)}", ct);
                else await c.Api.GetAsync($"api/v1/teams/{E(team)}", ct);
                if (team != c.Profile.Team && project is null) c.Profile.Project = null;
                c.Profile.Team = team;
                if (project is not null) c.Profile.Project = project;
                Config.Save(c.Profile);
            }
            c.Out.Say($"Team {c.Profile.Team ?? "(none)"}, project {c.Profile.Project ?? "(none)"}.", new { team = c.Profile.Team, project = c.Profile.Project });
        });

        var teams = new Command("teams", """
            The teams you belong to (all of them for platform admins), with your role.

            Example:
              platform teams
            """).With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync("api/v1/teams?limit=200", ct);
            c.Out.Print(page, ["name", "role", "created"], Items, t => [S(t, "name"), S(t, "myRole") ?? "-", Ago(t, "createdAt")], "No teams: ask a platform admin to add you to one.");
        });

        var projects = new Command("projects", """
            The team's projects.

            Examples:
              platform projects --team acme
            """).With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync($"api/v1/teams/{E(c.Team)}/projects?limit=200", ct);
            c.Out.Print(page, ["name", "created"], Items, p => [S(p, "name"), Ago(p, "createdAt")], $"Team {c.Team} has no projects yet.");
        });
        return [login, logout, whoami, target, teams, projects];
    }

    /// <summary>RFC 8628: ask for a device code, show the link and the code, poll the token endpoint until the person decides.</summary>
    private static async Task DeviceSignInAsync(ApiClient api, Profile profile, Output output, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = api.BaseAddress };
        using var asked = await http.PostAsync("connect/device", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["client_id"] = ApiClient.ClientId, ["scope"] = "openid offline_access platform email",
        }), ct);
        var device = await ApiClient.ReadJsonAsync(asked, ct);
        if (!asked.IsSuccessStatusCode)
            throw new CliException($"The Api at {api.BaseAddress} refused a device sign-in: {ApiClient.Str(device, "error_description") ?? ApiClient.Str(device, "error") ?? asked.ReasonPhrase}.");
        var link = ApiClient.Str(device, "verification_uri_complete") ?? ApiClient.Str(device, "verification_uri");
        var code = ApiClient.Str(device, "user_code");
        // To stderr: the prompt is for the person, stdout stays the command's result (--json).
        Console.Error.WriteLine($"Open this link in a browser signed in to the platform, check the code and approve:\n\n  {link}\n\n  code: {code}\n\nWaiting for approval…");
        var interval = TimeSpan.FromSeconds(device.TryGetProperty("interval", out var i) && i.TryGetInt32(out var s) ? Math.Max(s, 1) : 5);
        var until = DateTimeOffset.UtcNow.AddSeconds(device.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var x) ? x : 600);
        var poll = new Dictionary<string, string>
        {
            ["grant_type"] = "urn:ietf:params:oauth:grant-type:device_code", ["client_id"] = ApiClient.ClientId,
            ["device_code"] = ApiClient.Str(device, "device_code") ?? "",
        };
        while (DateTimeOffset.UtcNow < until)
        {
            await Task.Delay(interval, ct);
            using var response = await http.PostAsync("connect/token", new FormUrlEncodedContent(poll), ct);
            var answer = await ApiClient.ReadJsonAsync(response, ct);
            if (response.IsSuccessStatusCode)
            {
                ApiClient.Store(profile, answer);
                return;
            }
            switch (ApiClient.Str(answer, "error"))
            {
                case "authorization_pending": continue;
                case "slow_down": interval += TimeSpan.FromSeconds(5); continue;
                case "access_denied": throw new CliException("The sign-in was denied in the browser.");
                case "expired_token": throw new CliException("The code expired before it was approved: run `platform login` again.");
                default: throw new CliException($"The sign-in failed: {ApiClient.Str(answer, "error_description") ?? ApiClient.Str(answer, "error") ?? response.ReasonPhrase}.");
            }
        }
        throw new CliException("The code expired before it was approved: run `platform login` again.");
    }
}
