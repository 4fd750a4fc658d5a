using Microsoft.AspNetCore.Authorization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Platform.Api.Identity;
using Platform.Data;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Platform.Api.Operations;

public static class Operations
{
    /// <summary>The policy of <c>/metrics</c>: a platform admin's token (personal access token or OIDC).</summary>
    public const string MetricsPolicy = "metrics";

    public static IHostApplicationBuilder AddPlatformOperations(this IHostApplicationBuilder builder)
    {
        // The figures describe every tenant (request paths and rates, audit outcomes, the runtime): not for
        // anyone who can reach the Api's port. Prometheus scrapes with a bearer token (authorization.credentials).
        builder.Services.AddScoped<IAuthorizationHandler, PlatformAdminHandler>();
        builder.Services.AddAuthorizationBuilder().AddPolicy(MetricsPolicy, p => p
            .AddAuthenticationSchemes(IdentitySetup.ApiScheme).RequireAuthenticatedUser().AddRequirements(new PlatformAdminRequirement()));
        builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        builder.Services.AddSingleton<ClusterRoles>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ClusterRoles>());
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("platform-api"))
            .WithMetrics(m => m
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter("Platform.Api")
                .AddPrometheusExporter());
        if (builder.Configuration["Logging:Console:FormatterName"] is null && !builder.Environment.IsDevelopment())
            builder.Logging.AddJsonConsole(o => o.IncludeScopes = true);
        return builder;
    }

    /// <summary>/healthz: the process answers (liveness). /readyz: the database answers (readiness). /metrics: Prometheus, for platform admins.</summary>
    public static WebApplication MapPlatformOperations(this WebApplication app)
    {
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false }).ExcludeFromDescription();
        app.MapHealthChecks("/readyz", new() { Predicate = c => c.Tags.Contains("ready") }).ExcludeFromDescription();
        app.MapPrometheusScrapingEndpoint("/metrics").RequireAuthorization(MetricsPolicy);
        return app;
    }

    private sealed class PlatformAdminRequirement : IAuthorizationRequirement;

    /// <summary>
    /// Met by a person who is a platform admin now (read from the database, as every request's caller is:
    /// a lost admin flag or a lock-out counts at once); never by a machine client such as a node.
    /// </summary>
    private sealed class PlatformAdminHandler(PlatformDbContext db, TimeProvider clock) : AuthorizationHandler<PlatformAdminRequirement>
    {
        protected override async Task HandleRequirementAsync(AuthorizationHandlerContext context, PlatformAdminRequirement requirement)
        {
            if (context.User.FindFirst("client_kind")?.Value == "machine" || context.User.FindFirst(Claims.Subject)?.Value is not { } subject)
                return;
            var user = await db.Users.AsNoTracking().Where(u => u.Id == subject)
                .Select(u => new { u.IsPlatformAdmin, u.LockoutEnd }).FirstOrDefaultAsync();
            if (user is { IsPlatformAdmin: true } && !(user.LockoutEnd > clock.GetUtcNow()))   // compared here: SQLite cannot compare offsets
                context.Succeed(requirement);
        }
    }

    private sealed class DatabaseHealthCheck(PlatformDbContext db) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct) =>
            await db.Database.CanConnectAsync(ct)
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("The database does not answer.");
    }
}
