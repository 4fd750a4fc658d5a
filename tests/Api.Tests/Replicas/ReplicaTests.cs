using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Replicas;

/// <summary>
/// What makes several Api replicas one control plane: SQLite refuses a second Api on its folder, a replica must be on
/// the shared folder its database expects, and each singleton role is held by one replica at a time and handed on.
/// </summary>
public sealed class ReplicaTests
{
    [Fact]
    public async Task A_second_Api_on_the_same_SQLite_folder_refuses_to_start_and_one_starts_once_the_first_stopped()
    {
        var first = new PlatformHost(Provider.Sqlite);
        first.Admin();   // started: it holds the folder
        try
        {
            // In this process: the host does not start, and says why.
            await using (var second = new PlatformHost(Provider.Sqlite, first.DataDir))
            {
                var refused = Assert.ThrowsAny<Exception>(() => second.Admin());
                Assert.Contains("Another Api process is using the data folder", Flatten(refused));
            }
            // As an operator starts it: a second process exits with the reason, not a stack of SQLite busy errors.
            var (code, output) = await RunApiAsync(first.DataDir);
            Assert.Equal(2, code);
            Assert.Contains("The Api did not start: Another Api process is using the data folder", output);
            Assert.DoesNotContain("Unhandled exception", output);
            Assert.Contains("PostgreSQL", output);
            // The first one is unaffected.
            (await first.Admin().GetAsync("/api/v1/teams")).EnsureSuccessStatusCode();
        }
        finally
        {
            await first.DisposeAsync();
        }
        // The positive control: with the first stopped, the same folder starts again with everything in it.
        await using var again = new PlatformHost(Provider.Sqlite, first.DataDir);
        (await again.Admin().GetAsync("/api/v1/teams")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task A_replica_refuses_a_data_folder_that_is_not_the_shared_one_its_database_expects()
    {
        await using var first = new PlatformHost(Provider.Postgres);
        first.Admin();
        var marker = (await File.ReadAllTextAsync(Path.Combine(first.DataDir, "storage-id"))).Trim();
        Assert.Matches("^[0-9a-f]{32}$", marker);

        // A folder of its own (not mounted from the shared one): no marker while the database has one.
        await using (var own = new PlatformHost(Provider.Postgres, connectionString: first.ConnectionString))
            Assert.Contains("is not the one this database's other replicas use", Flatten(Assert.ThrowsAny<Exception>(() => own.Admin())));
        // Another installation's folder: a marker that differs.
        var foreign = Path.Combine(Path.GetTempPath(), "platform-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(foreign);
        await File.WriteAllTextAsync(Path.Combine(foreign, "storage-id"), Guid.NewGuid().ToString("N") + "\n");
        await using (var other = new PlatformHost(Provider.Postgres, foreign, first.ConnectionString))
            Assert.Contains("belongs to another installation", Flatten(Assert.ThrowsAny<Exception>(() => other.Admin())));

        // The positive control: the shared folder itself starts a second replica beside the first (PostgreSQL takes no folder lock).
        await using var second = new PlatformHost(Provider.Postgres, first.DataDir, first.ConnectionString, Named("second"));
        (await second.Admin().GetAsync("/api/v1/teams")).EnsureSuccessStatusCode();

        // A third with the first one's name (both took the host name): it would recover the first one's builds as its own.
        await using (var twin = new PlatformHost(Provider.Postgres, first.DataDir, first.ConnectionString))
            Assert.Contains($"Another running Api replica is named '{Environment.MachineName}'", Flatten(Assert.ThrowsAny<Exception>(() => twin.Admin())));
    }

    private static Dictionary<string, string?> Named(string name) => new() { ["Platform:ReplicaName"] = name };

    [Fact]
    public async Task Each_role_is_held_by_one_replica_and_handed_on_when_its_holder_stops_or_loses_its_session()
    {
        var a = new PlatformHost(Provider.Postgres, settings: Named("a"));
        a.Admin();
        await using var b = new PlatformHost(Provider.Postgres, a.DataDir, a.ConnectionString, Named("b"));
        var viaB = b.Admin();
        try
        {
            // Both report themselves; each role has exactly one holder.
            var replicas = await WaitForAsync(viaB, r => r.Count(x => x.State == "Up") == 2 && OneHolderEach(r), "two replicas, one holder per role");
            Assert.Single(replicas, r => r.Self);

            // A holder whose database session ends (a crash, a cut network) gives its roles up; each is held again, by one replica.
            var holder = replicas.First(r => r.Roles.Contains("scheduler"));
            await using (var admin = new NpgsqlConnection(a.ConnectionString))
            {
                await admin.OpenAsync();
                await using var kill = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = @name", admin);
                kill.Parameters.AddWithValue("name", "platform-roles " + holder.Id);
                Assert.Equal(1L, await kill.ExecuteScalarAsync());   // the holder's own session, found by its name
            }
            await WaitForAsync(viaB, r => r.Count(x => x.State == "Up") == 2 && OneHolderEach(r), "roles held again after the session ended", 10);

            // A holder that stops: the other replica takes every role, within 10 s.
            await a.DisposeAsync();
            replicas = await WaitForAsync(viaB, r => r.Count == 1 && r[0].Self && r[0].Roles.Order().SequenceEqual(["rollouts", "scheduler"]),
                "the remaining replica holds every role", 10);
        }
        finally
        {
            await a.DisposeAsync();
        }
    }

    private sealed record Replica(string Id, string Name, string State, List<string> Roles, bool Self);

    private static bool OneHolderEach(List<Replica> replicas) =>
        new[] { "scheduler", "rollouts" }.All(role => replicas.Count(r => r.State == "Up" && r.Roles.Contains(role)) == 1);

    private static async Task<List<Replica>> WaitForAsync(HttpClient admin, Func<List<Replica>, bool> condition, string what, int seconds = 30)
    {
        List<Replica> last = [];
        try
        {
            await Cluster.WaitAsync(async () =>
            {
                var page = await admin.GetFromJsonAsync<JsonElement>("/api/v1/replicas");
                last = page.GetProperty("items").EnumerateArray().Select(e => new Replica(e.GetProperty("id").GetString()!, e.GetProperty("name").GetString()!,
                    e.GetProperty("state").GetString()!, e.GetProperty("roles").EnumerateArray().Select(x => x.GetString()!).ToList(), e.GetProperty("self").GetBoolean())).ToList();
                return condition(last);
            }, seconds, what);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new Xunit.Sdk.XunitException($"{e.Message}; the replicas: {JsonSerializer.Serialize(last)}");
        }
        return last;
    }

    private static string Flatten(Exception e) => e.InnerException is null ? e.Message : e.Message + " | " + Flatten(e.InnerException);

    private static async Task<(int Code, string Output)> RunApiAsync(string dataDir)
    {
        var info = new ProcessStartInfo("dotnet", [Built.Dll("Api", "Platform.Api")]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment["Platform__DataDir"] = dataDir;
        info.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        info.Environment["Platform__Ingress__Url"] = "http://127.0.0.1:0";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(guard.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw; }
        return (p.ExitCode, await stdout + await stderr);
    }
}
