using Microsoft.EntityFrameworkCore;

namespace Platform.Api.Infrastructure;

/// <summary>
/// A background pass every <see cref="Period"/> on the injected clock, each in a scope of its own; a pass that fails for
/// the database is logged and the next one retries (the scheduler's placement pass, the rollout monitor). A pass with a
/// <see cref="Role"/> runs only on the replica holding it.
/// </summary>
public abstract class ScopedPeriodicPass(IServiceScopeFactory scopes, TimeProvider clock) : BackgroundService
{
    protected abstract TimeSpan Period { get; }

    /// <summary>The singleton role the pass needs (<see cref="Operations.ClusterRoles"/>): replicas without it skip their passes.</summary>
    protected virtual string? Role => null;

    protected abstract Task PassAsync(IServiceProvider services, CancellationToken ct);

    protected abstract void Failed(string reason);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period, clock);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await timer.WaitForNextTickAsync(stoppingToken);
                await using var scope = scopes.CreateAsyncScope();
                if (Role is { } role && scope.ServiceProvider.GetService<Operations.ClusterRoles>() is { } roles && !roles.Holds(role)) continue;
                await PassAsync(scope.ServiceProvider, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is DbUpdateException or InvalidOperationException or System.Data.Common.DbException)
            {
                Failed(e.Message);
            }
        }
    }
}
