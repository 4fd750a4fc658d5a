using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Platform.Api.Domains;

public static class DomainsSetup
{
    /// <summary>Custom domains: their certificates (checked, protected at rest, served by the router).</summary>
    public static IHostApplicationBuilder AddPlatformDomains(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<Certificates>();
        return builder;
    }
}
