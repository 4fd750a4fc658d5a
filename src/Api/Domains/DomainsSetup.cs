using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Api.Infrastructure;

namespace Platform.Api.Domains;

public static class DomainsSetup
{
    /// <summary>Custom domains: their certificates (checked, protected at rest, served by the router) and the ACME issuer.</summary>
    public static IHostApplicationBuilder AddPlatformDomains(this IHostApplicationBuilder builder, PlatformOptions options)
    {
        builder.Services.TryAddSingleton<Certificates>();
        builder.Services.TryAddScoped<DomainIssuer>();
        builder.Services.AddHttpClient(DomainIssuer.HttpClientName, c => c.Timeout = TimeSpan.FromSeconds(30))
            .ConfigurePrimaryHttpMessageHandler(() =>
            {
                var handler = new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false };
                if (options.Acme.TrustedCaFile is { } file)
                {
                    // The system's roots and these: a private CA's directory (or a test server's) is trusted, nothing else changes.
                    var extra = new X509Certificate2Collection();
                    extra.ImportFromPemFile(file);
                    handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                    {
                        if (errors == SslPolicyErrors.None) return true;
                        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false;
                        using var custom = new X509Chain();
                        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                        custom.ChainPolicy.CustomTrustStore.AddRange(extra);
                        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                        if (chain is not null) custom.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
                        return custom.Build(new X509Certificate2(certificate));
                    };
                }
                return handler;
            });
        return builder;
    }
}
