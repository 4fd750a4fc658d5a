namespace Platform.Api.Tests.Infrastructure;

/// <summary>One Api host per provider, shared by the suite's test classes of that provider.</summary>
public abstract class HostFixture(Provider provider) : IAsyncLifetime
{
    public PlatformHost Host { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Host = new PlatformHost(provider);
        _ = Host.BaseAddress;   // starts the server: migrations and bootstrap run now
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

public sealed class SqliteFixture() : HostFixture(Provider.Sqlite);

public sealed class PostgresFixture() : HostFixture(Provider.Postgres);

[CollectionDefinition("sqlite")]
public sealed class SqliteCollection : ICollectionFixture<SqliteFixture>;

[CollectionDefinition("postgres")]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>;
