using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Apps;
using Platform.Api.Releases;
using Platform.Api.Rollouts;
using Platform.Api.Routing;
using Platform.Api.Audit;
using Platform.Api.Domains;
using Platform.Api.Identity;
using Platform.Api.Nodes;
using Platform.Api.Projects;
using Platform.Api.Quotas;
using Platform.Api.Registry;
using Platform.Api.Teams;
using Platform.Api.Users;

namespace Platform.Api.Infrastructure;

public static class ApiSetup
{
    public static IHostApplicationBuilder AddPlatformApi(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddProblemDetails();
        services.AddExceptionHandler<ProblemExceptionHandler>();
        // Binding failures throw, so ProblemExceptionHandler can name the field in a problem details body.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.Configure<JsonOptions>(o => o.SerializerOptions.MaxDepth = 16);
        services.AddOpenApi();
        services.AddHttpContextAccessor();
        services.AddAntiforgery();
        services.AddScoped<AccessService>();
        services.AddScoped<QuotaService>();
        services.AddSingleton<AdmissionGate>();
        services.AddScoped<MembershipService>();
        services.TryAddSingleton<NodeControlKeys>();
        services.AddScoped<Apps.AppRemoval>();
        services.AddScoped<CallerFilter>();
        services.AddScoped<AuditFilter>();
        return builder;
    }

    /// <summary>The group every /api/v1 endpoint of a person is in: authenticated, caller resolved, changes audited.</summary>
    public static RouteGroupBuilder MapApiGroup(this IEndpointRouteBuilder app) => app.MapGroup("/api/v1")
        .RequireAuthorization(IdentitySetup.ApiScheme)
        .AddEndpointFilter<CallerFilter>()
        .AddEndpointFilter<AuditFilter>()
        .WithTags("Platform");

    /// <summary>Every /api/v1 endpoint: authenticated, caller resolved, changes audited, bodies bounded.</summary>
    public static WebApplication MapPlatformApi(this WebApplication app)
    {
        var limit = app.Services.GetRequiredService<IOptions<PlatformOptions>>().Value.MaxRequestBodyBytes;
        app.UseWhen(ctx => ctx.Request.Path.StartsWithSegments("/api"), api => api.Use(async (ctx, next) =>
        {
            if (ctx.Request.ContentLength > limit)
            {
                ctx.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
                await ctx.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = ctx,
                    ProblemDetails = { Status = 413, Title = "The request body is too large.", Detail = $"The limit is {limit} bytes." },
                });
                return;
            }
            if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
                size.MaxRequestBodySize = limit;   // chunked bodies are cut off by the server at the same size
            await next(ctx);
        }));

        var api = app.MapApiGroup();
        api.MapUsersApi();
        api.MapTeamsApi();
        api.MapProjectsApi();
        api.MapAppsApi();
        api.MapAuditApi();
        api.MapNodesApi();
        Operations.ReplicasApi.MapReplicasApi(api);
        api.MapImagesApi();
        api.MapReleasesApi();
        api.MapRolloutsApi();
        api.MapDomainsApi();
        api.MapRequestsApi();
        api.MapIngressCertificateApi();

        app.MapGroup("/api/v1").AllowAnonymous().AddEndpointFilter<AuditFilter>().WithTags("Nodes").MapNodeJoin();
        // Node agents' own endpoints: their client-credentials token, no person, no audit of routine reports.
        app.MapGroup("/api/v1").RequireAuthorization(IdentitySetup.ApiScheme).WithTags("Nodes").MapNodeAgentApi();
        return app;
    }
}
