using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Infrastructure;
using Platform.Api.Tests.Infrastructure;
using Platform.Data;

namespace Platform.Api.Tests.Hostile;

/// <summary>
/// A tenant deletes a project at the moment the Api dies, after the rows went but before their files did, and
/// hopes its repository, layer cache and build logs stay on disk for good: housekeeping removes what no app or
/// build owns any more, and leaves the files of apps that exist.
/// </summary>
[Trait("Suite", "Hostile")]
public abstract class LeftoverAttackTests(PlatformHost host)
{
    [Fact]
    public async Task Files_a_crash_left_of_deleted_apps_are_removed_by_housekeeping_while_live_apps_keep_theirs()
    {
        var admin = host.Admin();
        var team = "left" + Guid.NewGuid().ToString("N")[..8];
        await admin.PostAsJsonAsync("/api/v1/teams", new { name = team }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects", new { name = "web" }).ShouldBeAsync(HttpStatusCode.Created);
        await admin.PostAsJsonAsync($"/api/v1/teams/{team}/projects/web/apps", new { name = "live", instances = 0 }).ShouldBeAsync(HttpStatusCode.Created);
        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        var layout = scope.ServiceProvider.GetRequiredService<DataLayout>();
        var live = await db.Apps.Where(a => a.Name == "live" && a.Project!.Team!.Name == team).Select(a => a.Id).SingleAsync();
        var gone = Guid.NewGuid();
        var goneBuild = Guid.NewGuid();
        foreach (var app in new[] { live, gone })
        {
            Directory.CreateDirectory(Path.Combine(layout.Repository(app), "objects"));
            Directory.CreateDirectory(Path.Combine(layout.BuildahStorage(app), "storage"));
        }
        Directory.CreateDirectory(layout.BuildLogs);
        await File.WriteAllTextAsync(layout.BuildLog(goneBuild), "RUN echo secret-build-output\n");

        var report = await scope.ServiceProvider.GetRequiredService<Api.Jobs.Housekeeping>().RunAsync(CancellationToken.None);

        Assert.True(report.Leftovers >= 3, $"{report}");
        Assert.False(Directory.Exists(layout.Repository(gone)), "a deleted app's repository stayed");
        Assert.False(Directory.Exists(layout.BuildahStorage(gone)), "a deleted app's layer cache stayed");
        Assert.False(File.Exists(layout.BuildLog(goneBuild)), "a deleted build's log stayed");
        Assert.True(Directory.Exists(layout.Repository(live)), "a live app's repository went");
        Assert.True(Directory.Exists(layout.BuildahStorage(live)), "a live app's layer cache went");
    }
}

[Collection("sqlite")]
public sealed class SqliteLeftoverAttackTests(SqliteFixture f) : LeftoverAttackTests(f.Host);

[Collection("postgres")]
public sealed class PostgresLeftoverAttackTests(PostgresFixture f) : LeftoverAttackTests(f.Host);
