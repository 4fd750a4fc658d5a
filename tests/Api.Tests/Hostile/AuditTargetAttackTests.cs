using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A tenant changes things and hopes the audit log cannot say what: every change names its target by kind and
/// name (not only the request path, which for a create does not hold the new name), and a secret sent or shown in
/// a change (a token, an env value, a password) never lands in the log.
/// </summary>
[Trait("Suite", "Hostile")]
public abstract class AuditTargetAttackTests(PlatformHost host)
{
    [Fact]
    public async Task Every_kind_of_change_is_logged_with_its_target_by_name_and_no_secret_sent_or_shown_reaches_the_log()
    {
        var admin = host.Admin();
        var team = "aud" + Guid.NewGuid().ToString("N")[..8];
        var email = team + "-bob@example.com";
        const string password = "bobs-password-1";
        var envSecret = "env-" + Guid.NewGuid().ToString("N");
        var userToken = await host.UserTokenAsync(email, password);
        var bob = host.Http(userToken);

        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "web" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/members/{email}", new { role = "developer" }).ShouldBeAsync(HttpStatusCode.OK);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/projects/web/members/{email}", new { role = "admin" }).ShouldBeAsync(HttpStatusCode.OK);
        var app = await bob.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps",
            new { name = "shop", instances = 0, env = new Dictionary<string, string> { ["DB_PASSWORD"] = envSecret } }).ShouldBeAsync(HttpStatusCode.Created);
        Assert.Equal(envSecret, app.GetProperty("env").GetProperty("DB_PASSWORD").GetString());   // the secret was sent and shown
        await bob.PatchAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps/shop", new { instances = 0, memoryMiB = 128 }).ShouldBeAsync(HttpStatusCode.OK);
        await bob.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps", new { name = "shop" }).ShouldBeAsync(HttpStatusCode.Conflict);
        await admin.PutAsJsonAsync($"/api/v1/teams/{team}/projects/web/quota", new { memoryMiB = 1024 }).ShouldBeAsync(HttpStatusCode.OK);
        var created = await bob.PostAsJsonAsync("/api/v1/me/tokens", new { name = "ci", expiresInDays = 1 }).ShouldBeAsync(HttpStatusCode.Created);
        var tokenId = created.GetProperty("id").GetString()!;
        var tokenSecret = created.GetProperty("token").GetString()!;
        await host.Http(tokenSecret).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);   // a real, working secret
        await bob.DeleteAsync($"/api/v1/me/tokens/{tokenId}").ShouldBeAsync(HttpStatusCode.NoContent);
        await bob.DeleteAsync($"/api/v1/teams/{team}/projects/web/apps/shop").ShouldBeAsync(HttpStatusCode.NoContent);
        await admin.DeleteAsync($"/api/v1/teams/{team}/projects/web/members/{email}").ShouldBeAsync(HttpStatusCode.NoContent);
        await bob.DeleteAsync($"/api/v1/teams/{team}/projects/web").ShouldBeAsync(HttpStatusCode.Forbidden);

        var all = await admin.GetAsync("/api/v1/audit?limit=500").ShouldBeAsync(HttpStatusCode.OK);
        var events = all.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("actor").GetString() == email
            || e.GetProperty("team").ValueKind == JsonValueKind.String && e.GetProperty("team").GetString() == team).ToList();
        string TargetOf(string action, string outcome = "success") =>
            events.First(e => e.GetProperty("action").GetString() == action && e.GetProperty("outcome").GetString() == outcome).GetProperty("target").GetString()!;

        Assert.Equal($"team {team}", TargetOf("teams.create"));
        Assert.Equal($"project {team}/web", TargetOf("projects.create"));
        Assert.Equal($"member {email} (team {team})", TargetOf("teams.members.put"));
        Assert.Equal($"member {email} (project {team}/web)", TargetOf("projects.members.put"));
        Assert.Equal($"member {email} (project {team}/web)", TargetOf("projects.members.delete"));
        Assert.Equal($"app {team}/web/shop", TargetOf("apps.create"));
        Assert.Equal($"app {team}/web/shop", TargetOf("apps.create", "rejected"));
        Assert.Equal($"app {team}/web/shop", TargetOf("apps.update"));
        Assert.Equal($"app {team}/web/shop", TargetOf("apps.delete"));
        Assert.Equal($"project {team}/web", TargetOf("projects.quota.put"));
        Assert.Equal($"project {team}/web", TargetOf("projects.delete", "denied"));
        Assert.Equal($"token {tokenId} (ci)", events.First(e => e.GetProperty("action").GetString() == "me.tokens.create").GetProperty("target").GetString());
        Assert.Equal($"token {tokenId}", TargetOf("me.tokens.revoke"));
        Assert.Equal($"/api/v1/teams/{team}/projects/web/apps", events.First(e => e.GetProperty("action").GetString() == "apps.create").GetProperty("path").GetString());

        // The whole log, as the platform admin reads it, holds none of the secrets that went through it.
        var raw = all.GetRawText();
        Assert.DoesNotContain(tokenSecret, raw);
        Assert.DoesNotContain(envSecret, raw);
        Assert.DoesNotContain(password, raw);
        Assert.DoesNotContain(userToken, raw);
    }
}

[Collection("sqlite")]
public sealed class SqliteAuditTargetAttackTests(SqliteFixture f) : AuditTargetAttackTests(f.Host);

[Collection("postgres")]
public sealed class PostgresAuditTargetAttackTests(PostgresFixture f) : AuditTargetAttackTests(f.Host);
