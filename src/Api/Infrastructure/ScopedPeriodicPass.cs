using Microsoft.EntityFrameworkCore;

namespace Platform.Api.Infrastructure;

/// <summary>
/// A background pass every <see cref="Period"/> on the injected clock, each in a scope of its own; a pass that fails for
/// the database is logged and the next one retries (the scheduler's placement pass, the rollout monitor).
/// </summary>
public abstract class ScopedPeriodicPass(IServiceScopeFactory scopes, TimeProvider clock) : BackgroundService
{
    protected abstract TimeSpan Period { get; }

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
