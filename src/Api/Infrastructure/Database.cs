using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Infrastructure;

public static class Database
{
    /// <summary>
    /// SQLite under the data folder by default; PostgreSQL with Platform:Database:Provider=Postgres and
    /// ConnectionStrings:Platform. Each provider has its own migration assembly (migrations/…).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformDatabase(this IHostApplicationBuilder builder, PlatformOptions options)
    {
        var connectionString = ConnectionString(builder.Configuration, options);
        // Pooled contexts: a request leases a reset context instead of building one (measurable on hot reads).
        builder.Services.AddDbContextPool<PlatformDbContext>(db =>
        {
            if (options.Database.Provider == DatabaseProvider.Postgres)
                db.UseNpgsql(connectionString, o => o.MigrationsAssembly("Platform.Migrations.Postgres"));
            else
                db.UseSqlite(connectionString, o => o.MigrationsAssembly("Platform.Migrations.Sqlite"))
                    .AddInterceptors(new SqliteConnectionSetup());
            db.UseOpenIddict();
        });
        return builder;
    }

    public static string ConnectionString(IConfiguration configuration, PlatformOptions options)
    {
        var configured = configuration.GetConnectionString("Platform");
        if (options.Database.Provider == DatabaseProvider.Postgres)
        {
            if (configured is null)
                throw new InvalidOperationException("Platform:Database:Provider is Postgres but ConnectionStrings:Platform is not set.");
            // Defaults unless the operator set them: prepared statements for the hot queries, and no
            // DISCARD ALL round trip when a pooled connection is returned (the Api keeps no session state).
            var csb = new Npgsql.NpgsqlConnectionStringBuilder(configured);
            if (!configured.Contains("Max Auto Prepare", StringComparison.OrdinalIgnoreCase)) csb.MaxAutoPrepare = 64;
            if (!configured.Contains("No Reset On Close", StringComparison.OrdinalIgnoreCase)) csb.NoResetOnClose = true;
            return csb.ConnectionString;
        }
        // Shared cache off, WAL on: readers never wait for the single writer.
        return configured ?? $"Data Source={DataLayout.Of(options).Database};Cache=Private;Pooling=True";
    }

    /// <summary>Applies pending migrations; every replica may call it, PostgreSQL serialises them with a lock.</summary>
    public static async Task MigrateAsync(IServiceProvider services, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
        await db.Database.MigrateAsync(ct);
        if (db.Database.IsSqlite())
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
    }
}

/// <summary>
/// Per-connection SQLite settings: WAL's recommended <c>synchronous=NORMAL</c> (durable across crashes
/// of the process, may lose the last commits on power loss, never corrupts) and SQLite's own busy
/// handler, which waits in small steps, instead of Microsoft.Data.Sqlite's 150 ms retry sleeps.
/// </summary>
public sealed class SqliteConnectionSetup : Microsoft.EntityFrameworkCore.Diagnostics.DbConnectionInterceptor
{
    private const string Pragmas = "PRAGMA busy_timeout = 30000; PRAGMA synchronous = NORMAL;";

    public override void ConnectionOpened(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData)
    {
        using var command = connection.CreateCommand();
        command.CommandText = Pragmas;
        command.ExecuteNonQuery();
    }

    public override async Task ConnectionOpenedAsync(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = Pragmas;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
