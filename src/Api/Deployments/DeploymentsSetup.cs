using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Api.Registry;
using Platform.Api.Releases;

namespace Platform.Api.Deployments;

public static class DeploymentsSetup
{
    /// <summary>The one path that changes what an app runs, the releases it records and the image resolution that pins them.</summary>
    public static IHostApplicationBuilder AddPlatformDeployments(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddScoped<DeploymentService>();
        builder.Services.TryAddScoped<ReleaseService>();
        builder.Services.TryAddScoped<ImageResolver>();
        builder.Services.TryAddScoped<Rollouts.RolloutService>();
        builder.Services.AddHostedService<Rollouts.RolloutMonitor>();
        return builder;
    }
}
