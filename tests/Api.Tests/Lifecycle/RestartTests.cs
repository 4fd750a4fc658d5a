using System.Net;
using System.Net.Http.Json;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Lifecycle;

/// <summary>Data, tokens and sign-in survive an Api restart: keys and state live under the data folder and in the database.</summary>
public abstract class RestartTests(Provider provider)
{
    [Fact]
    public async Task Data_tokens_and_sign_in_survive_a_restart()
    {
        string dataDir, pat, refresh, access;
        string? connectionString;
        var team = "restart-" + Guid.NewGuid().ToString("N")[..6];
        // A restarted Api listens on a new port here; its public URL (the token issuer) stays the same.
        var settings = new Dictionary<string, string?> { ["Platform:PublicUrl"] = "http://platform.test/" };
        await using (var first = new PlatformHost(provider, settings: settings))
        {
            dataDir = first.DataDir;
            connectionString = first.ConnectionString;
            await first.Admin().PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
            pat = await first.UserTokenAsync("restart@example.com");
            var tokens = await first.Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "password", ["client_id"] = "platform-cli", ["username"] = PlatformHost.AdminEmail,
                ["password"] = PlatformHost.AdminPassword, ["scope"] = "offline_access platform",
            })).ShouldBeAsync(HttpStatusCode.OK);
            refresh = tokens.GetProperty("refresh_token").GetString()!;
            access = tokens.GetProperty("access_token").GetString()!;
        }

        await using var second = new PlatformHost(provider, dataDir, connectionString, settings);
        await second.Admin().GetAsync($"/api/v1/teams/{team}").ShouldBeAsync(HttpStatusCode.OK);
        await second.Http(pat).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        await second.Http(access).GetAsync("/api/v1/me").ShouldBeAsync(HttpStatusCode.OK);
        await second.Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["client_id"] = "platform-cli", ["refresh_token"] = refresh,
        })).ShouldBeAsync(HttpStatusCode.OK);
        await second.PasswordGrantAsync("restart@example.com", "user-password-1");
    }
}

public sealed class SqliteRestartTests() : RestartTests(Provider.Sqlite);

public sealed class PostgresRestartTests() : RestartTests(Provider.Postgres);
