using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Platform.Api.Routing;

public static class RoutingSetup
{
    /// <summary>The route table (host → running instances) and the router, its own Kestrel listener on Platform:Ingress:Url.</summary>
    public static IHostApplicationBuilder AddPlatformRouting(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<TlsCertificates>();
        builder.Services.TryAddSingleton<RouteTable>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RouteTable>());
        builder.Services.TryAddSingleton<RequestStats>();
        builder.Services.AddHostedService<RequestStatsWriter>();
        builder.Services.TryAddSingleton<Router>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<Router>());
        return builder;
    }
}
