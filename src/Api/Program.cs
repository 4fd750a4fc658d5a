using Microsoft.Extensions.Options;
using Platform.Api.Git;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Api.Jobs;
using Platform.Api.Operations;
using Platform.Api.Registry;
using Platform.Api.Scheduling;

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddOptions<PlatformOptions>().BindConfiguration(PlatformOptions.Section).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<PlatformOptions>, PlatformOptionsValidator>();
builder.Services.AddSingleton(TimeProvider.System);
var options = builder.Configuration.GetSection(PlatformOptions.Section).Get<PlatformOptions>() ?? new PlatformOptions();
Directory.CreateDirectory(options.FullDataDir);

builder.AddPlatformDatabase(options);
builder.AddPlatformIdentity(options);
builder.AddPlatformApi();
builder.AddPlatformOperations();
builder.AddPlatformJobs(options);
builder.Services.AddPlatformRegistry(options);
builder.Services.AddPlatformScheduling(options);

var app = builder.Build();

// `dotnet run --project src/Api -- migrate` applies the migrations and exits (for deploy pipelines).
await Database.MigrateAsync(app.Services, CancellationToken.None);
if (args.Contains("migrate"))
    return;
await Bootstrap.RunAsync(app.Services, CancellationToken.None);

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
app.MapPlatformApi();
app.MapRegistry();
app.MapGitHosting();
app.UsePlatformJobs();
app.MapGet("/", () => Results.Redirect("/openapi/v1.json")).ExcludeFromDescription();

app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
