using System.CommandLine;
using System.Text.Json;
using static Platform.Cli.Commands;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>Personal access tokens, team and project members, and the team's quota.</summary>
public static class TeamCommands
{
    public static IEnumerable<Command> All(TextWriter stdout) => [Tokens(stdout), Members(stdout), Quota(stdout)];

    private static Command Tokens(TextWriter stdout)
    {
        var list = new Command("list", """
            Your personal access tokens (their prefix only: a token is shown once, when made).

            Example:
              platform tokens list
            """).With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync("api/v1/me/tokens", ct);
            c.Out.Print(page, ["id", "name", "prefix", "expires", "last used", "state"], Items, t =>
            [
                S(t, "id"), S(t, "name"), S(t, "prefix") + "…", S(t, "expiresAt")?[..10], S(t, "lastUsedAt") is null ? "never" : Ago(t, "lastUsedAt"),
                S(t, "revokedAt") is not null ? "revoked" : DateTimeOffset.TryParse(S(t, "expiresAt"), out var e) && e < DateTimeOffset.UtcNow ? "expired" : "active",
            ], "No personal access tokens.");
        });

        var name = new Argument<string>("name") { Description = "What the token is for (ci, laptop…)" };
        var days = new Option<int?>("--expires-in-days") { Description = "Lifetime in days (default 90)" };
        var create = new Command("create", """
            Make a personal access token (for CI: PLATFORM_TOKEN). It is printed once, on stdout; keep it in a secret store.

            Example:
              platform tokens create ci --expires-in-days 30
            """) { name, days };
        create.With(stdout, async (c, ct) =>
        {
            var made = await c.Api.SendAsync(HttpMethod.Post, "api/v1/me/tokens", new { name = c.Parse.GetValue(name), expiresInDays = c.Parse.GetValue(days) }, ct);
            if (c.Out.Json) c.Out.Fields(made);
            else
            {
                Console.Error.WriteLine($"Token {S(made, "name")} (id {S(made, "id")}), valid until {S(made, "expiresAt")?[..10]}; shown this once:");
                c.Out.Out.WriteLine(S(made, "token"));
            }
        });

        var id = new Argument<string>("id") { Description = "The token's id (from `platform tokens list`)" };
        var revoke = new Command("revoke", """
            Revoke a personal access token at once.

            Example:
              platform tokens revoke 0193…
            """) { id };
        revoke.With(stdout, async (c, ct) =>
        {
            await c.Api.SendAsync(HttpMethod.Delete, $"api/v1/me/tokens/{E(c.Parse.GetValue(id)!)}", null, ct);
            c.Out.Say("Revoked.", new { revoked = c.Parse.GetValue(id) });
        });
        return new Command("tokens", "Your personal access tokens.") { list, create, revoke };
    }

    private static Command Members(TextWriter stdout)
    {
        var inProject = new Option<bool>("--in-project") { Description = "Act on the project's own members (--project) rather than the team's" };
        string Path(Context c) => c.Parse.GetValue(inProject) ? $"api/v1/teams/{E(c.Team)}/projects/{E(c.Project)}/members" : $"api/v1/teams/{E(c.Team)}/members";

        var list = new Command("list", """
            The team's members and their roles (and project roles).

            Example:
              platform members list --team acme
            """);
        list.With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync($"api/v1/teams/{E(c.Team)}/members", ct);
            c.Out.Print(page, ["email", "role", "project"], Items, m => [S(m, "email"), S(m, "role"), S(m, "project") ?? "(team)"], "No members.");
        });

        var email = new Argument<string>("email") { Description = "The person's email" };
        var role = new Argument<string>("role") { Description = "viewer, developer, admin (owner for teams)" };
        var set = new Command("set", """
            Give a person a role in the team (team admins), or with --in-project in the project (project admins).

            Examples:
              platform members set dev@example.com developer --team acme
              platform members set dev@example.com admin --in-project --project web
            """) { email, role, inProject };
        set.With(stdout, async (c, ct) =>
        {
            var m = await c.Api.SendAsync(HttpMethod.Put, $"{Path(c)}/{E(c.Parse.GetValue(email)!)}", new { role = c.Parse.GetValue(role) }, ct);
            c.Out.Say($"{S(m, "email")} is {S(m, "role")} of {(S(m, "project") is { } p ? $"project {p}" : $"team {c.Team}")}.", m);
        });

        var removeEmail = new Argument<string>("email") { Description = "The person's email" };
        var remove = new Command("remove", """
            Remove a person from the team (or with --in-project, their project role).

            Example:
              platform members remove dev@example.com --team acme
            """) { removeEmail, inProject };
        remove.With(stdout, async (c, ct) =>
        {
            await c.Api.SendAsync(HttpMethod.Delete, $"{Path(c)}/{E(c.Parse.GetValue(removeEmail)!)}", null, ct);
            c.Out.Say($"Removed {c.Parse.GetValue(removeEmail)}.", new { removed = c.Parse.GetValue(removeEmail) });
        });
        return new Command("members", "Who is in a team or project, with which role.") { list, set, remove };
    }

    private static Command Quota(TextWriter stdout) => new Command("quota", """
        The team's quota: what it may use and what it uses.

        Example:
          platform quota --team acme
        """).With(stdout, async (c, ct) =>
    {
        var team = await c.Api.GetAsync($"api/v1/teams/{E(c.Team)}", ct);
        var quota = team.GetProperty("quota");
        if (c.Out.Json)
        {
            c.Out.Fields(quota);
            return;
        }
        var rows = quota.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("used", out _))
            .Select(p => new[] { p.Name, S(p.Value, "used") ?? "0", S(p.Value, "limit") ?? "no limit" }).ToList();
        c.Out.Table(["resource", "used", "limit"], rows);
    });
}
