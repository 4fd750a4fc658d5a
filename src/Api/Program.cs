using Platform.Api.Builds;
using Platform.Api.Deployments;
using Platform.Api.Domains;
using Platform.Api.Git;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Api.Jobs;
using Platform.Api.Operations;
using Platform.Api.Registry;
using Platform.Api.Routing;
using Platform.Api.Scheduling;

var builder = WebApplication.CreateBuilder(args);

var options = builder.AddPlatformOptions();

builder.AddPlatformDatabase(options);
builder.AddPlatformIdentity(options);
builder.AddPlatformApi();
builder.AddPlatformOperations();
builder.AddPlatformJobs(options);
builder.Services.AddPlatformRegistry(options);
builder.AddPlatformDeployments();
builder.Services.AddPlatformScheduling(options);
builder.AddPlatformRouting();
builder.AddPlatformDomains(options);
builder.AddPlatformGit();
builder.AddPlatformBuilds(options);

var app = builder.Build();

// One Api per SQLite data folder, and (after the migrations) the shared folder the database expects (docs/operations.md).
var guard = app.Services.GetRequiredService<DataFolderGuard>();
try
{
    guard.LockSqlite();
    // `dotnet run --project src/Api -- migrate` applies the migrations and exits (for deploy pipelines).
    await Database.MigrateAsync(app.Services, CancellationToken.None);
    if (args.Contains("migrate"))
        return 0;
    await guard.CheckStorageIdAsync(app.Services, CancellationToken.None);
}
catch (StartRefusedException e) when (StartRefusedException.EndsProcess)
{
    return e.Exit();
}
await Bootstrap.RunAsync(app.Services, CancellationToken.None);
var layout = app.Services.GetRequiredService<DataLayout>();
DataFolderAccess.Protect(layout);
app.Lifetime.ApplicationStarted.Register(() => DataFolderAccess.Protect(layout));   // Hangfire's database exists by then

app.UseExceptionHandler();
app.UseStatusCodePages();
// The registry authenticates its own way (Docker token auth, RegistryAuth): skip the API's schemes there.
app.UseWhen(ctx => !ctx.Request.Path.StartsWithSegments("/v2"), branch => branch.UseAuthentication());
app.UseAuthorization();
app.UseAntiforgery();

app.MapOpenApi();
app.MapPlatformOperations();
app.MapLoginPage();
app.MapOidc();
app.MapDevicePage();
app.MapPlatformApi();
app.MapRegistry();
app.MapGitHosting();
app.MapPlatformBuilds();
app.UsePlatformJobs();
app.MapGet("/", () => Results.Redirect("/openapi/v1.json")).ExcludeFromDescription();

try
{
    app.Run();
}
catch (StartRefusedException e) when (StartRefusedException.EndsProcess)
{
    return e.Exit();   // a replica name already in use (ClusterRoles)
}
return 0;

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
