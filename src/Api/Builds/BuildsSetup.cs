using Hangfire;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Api.Infrastructure;

namespace Platform.Api.Builds;

public static class BuildsSetup
{
    /// <summary>
    /// Builds: the queue, the job and its parts, this host's running builds, the build network (made from the
    /// options when first used, after they were validated), webhooks, the recovery of builds whose Api died and
    /// the Hangfire workers of the "builds" queue (Platform:Builds:Workers, none on a replica that builds
    /// nothing). The recovery is registered before those workers so it runs before they take a build.
    /// </summary>
    public static IHostApplicationBuilder AddPlatformBuilds(this IHostApplicationBuilder builder, PlatformOptions options)
    {
        var services = builder.Services;
        services.TryAddScoped<BuildQueue>();
        services.TryAddScoped<BuildClaim>();
        services.TryAddScoped<BuildJob>();
        services.TryAddSingleton<LocalBuilds>();
        services.TryAddSingleton<BuildUser>();
        services.TryAddSingleton<Buildah>();
        services.TryAddSingleton<BuildNetwork>();
        services.TryAddSingleton<WebhookSecrets>();
        services.AddHostedService<BuildRecovery>();
        // Builds have workers of their own so long builds never hold up rollouts and housekeeping; a build that
        // must wait for its team's slot is scheduled again, so a 1 s poll.
        if (options.Builds.Workers > 0)
            services.AddHangfireServer((provider, o) =>
            {
                Jobs.Jobs.OwnActivator(provider, o);
                o.WorkerCount = options.Builds.Workers;
                o.Queues = ["builds"];
                o.SchedulePollingInterval = TimeSpan.FromSeconds(1);
                o.ServerName = $"{Environment.MachineName}:{Environment.ProcessId}:builds:{Guid.NewGuid():N}";
            });
        return builder;
    }

    /// <summary>The builds' REST endpoints (in the authenticated, audited /api/v1 group) and the webhooks (their own authentication).</summary>
    public static WebApplication MapPlatformBuilds(this WebApplication app)
    {
        app.MapApiGroup().MapBuildsApi();
        app.MapWebhooks();
        return app;
    }
}
