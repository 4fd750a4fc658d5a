using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;

namespace Platform.Api.Tests.Jobs;

/// <summary>Two Api hosts in one process (as tests and a build worker beside an Api run): the first to stop takes nothing of the other's jobs with it.</summary>
public sealed class TwoHostsTests
{
    /// <summary>A job whose only work is to say it ran in the host that made it.</summary>
    public sealed class Probe(IServiceProvider services)
    {
        public static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Ran = new();

        public void Run(string key) => Ran[key] = services.GetService<IBackgroundJobClient>() is not null;
    }

    /// <remarks>
    /// PostgreSQL too: Hangfire.PostgreSql makes a logger for every job it fetches (PostgreSqlFetchedJob), after the
    /// fetch is committed, so with a log provider that throws the job is lost for the invisibility timeout (30 min)
    /// and stays Enqueued with no worker on it (issue 16's "enqueued 3, processing 0"); SQLite's fetch makes none.
    /// </remarks>
    [Theory]
    [InlineData(Provider.Sqlite)]
    [InlineData(Provider.Postgres)]
    public async Task A_host_keeps_running_jobs_after_another_host_in_the_process_stopped(Provider provider)
    {
        await using var first = new PlatformHost(provider);
        first.Admin();   // started
        var second = new PlatformHost(provider);
        second.Admin();
        var before = Guid.NewGuid().ToString("N");
        second.Services.GetRequiredService<IBackgroundJobClient>().Enqueue<Probe>(p => p.Run(before));
        await Cluster.WaitAsync(() => Task.FromResult(Probe.Ran.ContainsKey(before)), 30, "positive control: the second host runs a job");
        await second.DisposeAsync();

        var key = Guid.NewGuid().ToString("N");
        first.Services.GetRequiredService<IBackgroundJobClient>().Enqueue<Probe>(p => p.Run(key));   // enqueueing logs too (Hangfire's filters)
        await Cluster.WaitAsync(() => Task.FromResult(Probe.Ran.ContainsKey(key)), 30, "the first host's job run after the second host stopped");
        Assert.True(Probe.Ran[key], "made from the first host's own services");
    }
}
