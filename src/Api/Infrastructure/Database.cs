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
        builder.Services.AddDbContext<PlatformDbContext>(db =>
        {
            if (options.Database.Provider == DatabaseProvider.Postgres)
                db.UseNpgsql(connectionString, o => o.MigrationsAssembly("Platform.Migrations.Postgres"));
            else
                db.UseSqlite(connectionString, o => o.MigrationsAssembly("Platform.Migrations.Sqlite"));
            db.UseOpenIddict();
        });
        return builder;
    }

    public static string ConnectionString(IConfiguration configuration, PlatformOptions options)
    {
        var configured = configuration.GetConnectionString("Platform");
        if (options.Database.Provider == DatabaseProvider.Postgres)
            return configured ?? throw new InvalidOperationException(
                "Platform:Database:Provider is Postgres but ConnectionStrings:Platform is not set.");
        // Shared cache off, WAL on: readers never wait for the single writer.
        return configured ?? $"Data Source={Path.Combine(options.FullDataDir, "platform.db")};Cache=Private;Pooling=True";
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
