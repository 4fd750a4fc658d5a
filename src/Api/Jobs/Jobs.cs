using Hangfire;
using Hangfire.Dashboard;
using Hangfire.PostgreSql;
using Hangfire.Storage.SQLite;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Jobs;

public static class Jobs
{
    public const string HousekeepingJobId = "housekeeping";

    /// <summary>
    /// A job taken by a replica that dies (SIGKILL, a lost machine) is offered again one minute later, not after
    /// Hangfire.PostgreSql's default 30: the sliding invisibility timeout has the live replica renew its hold on each
    /// job it runs every 12 s (a fifth of the timeout), so long jobs stay its own and a dead replica's come back.
    /// </summary>
    private static readonly PostgreSqlStorageOptions PostgresOptions = new()
    {
        SchemaName = "hangfire", PrepareSchemaIfNecessary = true, QueuePollInterval = TimeSpan.FromSeconds(1),
        InvisibilityTimeout = TimeSpan.FromMinutes(1), UseSlidingInvisibilityTimeout = true,
    };

    /// <summary>
    /// Hangfire with durable storage: SQLite under the data folder by default (one SQLitePCLRaw and
    /// one native library shared with EF Core, see Directory.Packages.props), PostgreSQL with
    /// PostgreSQL, so any replica (or a dedicated worker) takes queued jobs.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformJobs(this IHostApplicationBuilder builder, PlatformOptions options)
    {
        var connectionString = Database.ConnectionString(builder.Configuration, options);
        // The storage is this host's own singleton, never the process-wide JobStorage.Current, so that
        // several hosts in one process (tests, a worker beside an Api) cannot take each other's jobs.
        builder.Services.AddSingleton<JobStorage>(_ => options.Database.Provider == DatabaseProvider.Postgres
            ? NewPostgresStorage(connectionString)
            : new SQLiteStorage(DataLayout.Of(options).Jobs, new SQLiteStorageOptions { QueuePollInterval = TimeSpan.FromSeconds(1) }));
        builder.Services.AddHangfire((services, c) =>
        {
            // Hangfire's logging is process-wide: this host's factory is used while the host runs (HangfireLogs).
            var registration = HangfireLogs.Instance.Register(services.GetRequiredService<ILoggerFactory>());
            services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopped.Register(registration.Dispose);
            c.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings()
                .UseLogProvider(HangfireLogs.Instance);
        });
        builder.Services.AddHangfireServer((services, o) =>
        {
            OwnActivator(services, o);
            o.WorkerCount = Math.Max(2, Environment.ProcessorCount);
            o.Queues = ["default"];
            o.ServerName = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
        });
        // The "builds" queue has workers of its own (BuildsSetup).
        builder.Services.AddScoped<Housekeeping>();
        return builder;
    }

    /// <summary>
    /// A Hangfire server makes its jobs from this host's services, never from the process-wide
    /// <c>JobActivator.Current</c> (which Hangfire.NetCore points at whichever host resolved Hangfire last):
    /// with two hosts in one process, the first to stop would leave the other's workers failing every job
    /// with ObjectDisposedException — its builds then stayed Queued for ever.
    /// </summary>
    public static void OwnActivator(IServiceProvider services, BackgroundJobServerOptions options) =>
        options.Activator = new Hangfire.AspNetCore.AspNetCoreJobActivator(services.GetRequiredService<IServiceScopeFactory>());

#pragma warning disable CS0618 // the connection-string constructor is the one that does not go through JobStorage.Current
    private static JobStorage NewPostgresStorage(string connectionString) => new PostgreSqlStorage(connectionString, PostgresOptions);
#pragma warning restore CS0618

    public static WebApplication UsePlatformJobs(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<PlatformOptions>>().Value;
        app.Services.GetRequiredService<IRecurringJobManager>().AddOrUpdate<Housekeeping>(
            HousekeepingJobId, j => j.RunAsync(CancellationToken.None), options.Housekeeping.Schedule);
        app.Services.GetRequiredService<IRecurringJobManager>().AddOrUpdate<Registry.RegistryGc>(
            Registry.RegistryGc.JobId, j => j.RunAsync(CancellationToken.None), options.Registry.GcSchedule);
        // Custom domains' first orders that were not queued, retries after back-off and renewals: each minute.
        app.Services.GetRequiredService<IRecurringJobManager>().AddOrUpdate<Domains.DomainIssuer>(
            Domains.DomainIssuer.SweepJobId, j => j.SweepAsync(CancellationToken.None), Cron.Minutely());
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            Authorization = [],
            AsyncAuthorization = [new PlatformAdminDashboardFilter()],
            DashboardTitle = "Platform jobs",
            DisplayStorageConnectionString = false,
        });
        return app;
    }

    /// <summary>The dashboard is for platform admins: signed in through the login page (cookie) or with a token.</summary>
    private sealed class PlatformAdminDashboardFilter : IDashboardAsyncAuthorizationFilter
    {
        public async Task<bool> AuthorizeAsync(DashboardContext context)
        {
            var http = context.GetHttpContext();
            foreach (var scheme in new[] { IdentityConstants.ApplicationScheme, IdentitySetup.ApiScheme })
            {
                var result = await http.AuthenticateAsync(scheme);
                if (result.Principal?.FindFirst(Claims.Subject)?.Value is not { } subject)
                    continue;
                http.User = result.Principal;
                var db = http.RequestServices.GetRequiredService<PlatformDbContext>();
                return await db.Users.AnyAsync(u => u.Id == subject && u.IsPlatformAdmin);
            }
            return false;
        }
    }
}

/// <summary>
/// The recurring clean-up: spent or expired tokens, OpenIddict's expired tokens and authorisations,
/// audit events past their retention, the router's request counts older than the app page's longest window, and files of deleted apps a crash left in this host's data folder.
/// Idempotent: running it twice deletes nothing more.
/// </summary>
public sealed partial class Housekeeping(
    PlatformDbContext db, OpenIddict.Abstractions.IOpenIddictTokenManager tokens,
    OpenIddict.Abstractions.IOpenIddictAuthorizationManager authorizations,
    Quotas.QuotaService quotas, Apps.AppRemoval removal, IOptions<PlatformOptions> options, TimeProvider clock, ILogger<Housekeeping> log)
{
    public sealed record Report(int PersonalAccessTokens, int JoinTokens, long OidcTokens, long OidcAuthorizations, int AuditEvents, int UsageCorrections, int Leftovers, int RequestMinutes);

    // Hangfire enqueues a recurring job once per occurrence whichever replicas run; its distributed lock also keeps a
    // slow run from overlapping the next one.
    [AutomaticRetry(Attempts = 3)]
    [DisableConcurrentExecution(timeoutInSeconds: 600)]
    public async Task<Report> RunAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var utc = now.UtcDateTime;
        // Expired or revoked tokens stay listed for a week so their owners can see what happened.
        var grace = utc.AddDays(-7);
        var pats = await db.PersonalAccessTokens
            .Where(t => t.ExpiresAt < grace || (t.RevokedAt != null && t.RevokedAt < grace)).ExecuteDeleteAsync(ct);
        var joins = await db.NodeJoinTokens.Where(t => t.ExpiresAt < utc).ExecuteDeleteAsync(ct);
        var oidcTokens = await tokens.PruneAsync(now.AddDays(-14), ct);
        var oidcAuthorizations = await authorizations.PruneAsync(now.AddDays(-14), ct);
        var cutoff = utc.AddDays(-options.Value.Housekeeping.AuditRetentionDays);
        var audit = await db.AuditEvents.Where(e => e.At < cutoff).ExecuteDeleteAsync(ct);
        var oldTraffic = utc - Routing.RequestStats.Retention;
        var requestMinutes = await db.AppRequestMinutes.Where(m => m.Minute < oldTraffic).ExecuteDeleteAsync(ct);
        var corrections = 0;
        foreach (var teamId in await db.Teams.Select(t => t.Id).ToListAsync(ct))
            if (await quotas.RecomputeAsync(teamId, ct)) corrections++;
        if (corrections > 0) LogUsageDrift(log, corrections);
        var leftovers = await removal.RemoveLeftoversAsync(ct);
        var report = new Report(pats, joins, oidcTokens, oidcAuthorizations, audit, corrections, leftovers, requestMinutes);
        LogRan(log, pats, joins, oidcTokens, oidcAuthorizations, audit);
        return report;
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information,
        Message = "Housekeeping removed {Pats} personal access tokens, {Joins} join tokens, {OidcTokens} OIDC tokens, {OidcAuthorizations} OIDC authorisations, {Audit} audit events")]
    private static partial void LogRan(ILogger logger, int pats, int joins, long oidcTokens, long oidcAuthorizations, int audit);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Usage counters of {Teams} teams differed from their apps and were corrected")]
    private static partial void LogUsageDrift(ILogger logger, int teams);
}
