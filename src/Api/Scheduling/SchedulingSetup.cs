using Platform.Api.Infrastructure;

namespace Platform.Api.Scheduling;

public static class SchedulingSetup
{
    /// <summary>The scheduler, its background pass, change signals across replicas, and the client that reaches agents for app logs.</summary>
    public static IServiceCollection AddPlatformScheduling(this IServiceCollection services, PlatformOptions options)
    {
        services.AddSingleton<SchedulingGate>();
        services.AddSingleton<PlacementBatches>();
        services.AddSingleton<ClusterSignals>();
        services.AddScoped<PlacementService>();
        services.AddHostedService<SchedulingLoop>();
        if (options.Database.Provider == DatabaseProvider.Postgres)
            services.AddHostedService<PostgresListener>();
        // Log streams from agents stay open as long as the person follows them.
        services.AddHttpClient("agents", c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(5) });
        return services;
    }
}
