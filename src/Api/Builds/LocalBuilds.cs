using System.Collections.Concurrent;

namespace Platform.Api.Builds;

/// <summary>
/// The builds this host runs (build → its app) and the lock its claims take turns on: a singleton, so two
/// Api hosts in one process (tests, a worker beside an Api) neither share nor mistake each other's builds.
/// What is listed here is no leftover: its scratch folder, name-space, cgroup and the app's working
/// containers belong to a running build.
/// </summary>
public sealed class LocalBuilds
{
    private readonly ConcurrentDictionary<Guid, Guid> running = new();

    /// <summary>Claims of this host take turns (the database's lock orders replicas among themselves).</summary>
    public SemaphoreSlim ClaimLock { get; } = new(1, 1);

    public void Add(Guid build, Guid app) => running[build] = app;

    public void Remove(Guid build) => running.TryRemove(build, out _);

    public bool Runs(Guid build) => running.ContainsKey(build);

    /// <summary>Whether a build of <paramref name="app"/> runs here (its buildah storage is in use).</summary>
    public bool BuildsApp(Guid app) => running.Values.Contains(app);

    public IReadOnlyCollection<Guid> Builds => running.Keys.ToList();
}
