using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Npgsql;

namespace Platform.Api.Tests.Infrastructure;

public enum Provider { Sqlite, Postgres }

/// <summary>
/// The real Api on a real loopback port (Kestrel), on SQLite in a scratch data folder or on a fresh
/// database of the throwaway PostgreSQL that scripts/test.sh starts (PLATFORM_TEST_POSTGRES).
/// </summary>
public sealed class PlatformHost : WebApplicationFactory<Program>
{
    public const string AdminEmail = "admin@platform.test";
    public const string AdminPassword = "admin-password-1";
    public const string AdminToken = "plat_bootstrap_token_for_tests_0123456789";

    public Provider Provider { get; }
    public string DataDir { get; }
    public string? ConnectionString { get; }
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;

    /// <param name="services">Replaces services after the Api registered its own (a test's seam around one component).</param>
    public PlatformHost(Provider provider, string? dataDir = null, string? connectionString = null, IDictionary<string, string?>? settings = null,
        IReadOnlyList<System.Net.IPAddress>? listen = null, Action<IServiceCollection>? services = null)
    {
        _services = services;
        Provider = provider;
        DataDir = dataDir ?? Path.Combine(Path.GetTempPath(), "platform-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(DataDir);
        ConnectionString = provider == Provider.Postgres ? connectionString ?? CreateDatabase() : null;
        _settings = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>());
        if (listen is null) UseKestrel(0);
        else UseKestrel(k => { foreach (var ip in listen) k.Listen(ip, 0); });
    }

    /// <summary>The server's address on <paramref name="ip"/> (hosts made with several listen addresses).</summary>
    public Uri AddressOn(System.Net.IPAddress ip)
    {
        StartServer();
        return Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a)).First(u => u.Host == ip.ToString());
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("Platform:DataDir", DataDir);
        builder.UseSetting("Platform:Bootstrap:AdminEmail", AdminEmail);
        builder.UseSetting("Platform:Bootstrap:AdminPassword", AdminPassword);
        builder.UseSetting("Platform:Bootstrap:AdminToken", AdminToken);
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.UseSetting("Logging:Console:FormatterName", "simple");
        // Each host's router on a free port of its own (Router.Address tells which).
        builder.UseSetting("Platform:Ingress:Url", "http://127.0.0.1:0");
        if (Provider == Provider.Postgres)
        {
            builder.UseSetting("Platform:Database:Provider", "Postgres");
            builder.UseSetting("ConnectionStrings:Platform", ConnectionString);
        }
        foreach (var (k, v) in _settings) builder.UseSetting(k, v);
        if (_services is not null) Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.ConfigureTestServices(builder, _services);
    }

    /// <summary>The server's base address (http://127.0.0.1:port), once started.</summary>
    public Uri BaseAddress
    {
        get
        {
            StartServer();
            var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new Uri(address.Replace("[::]", "127.0.0.1").Replace("localhost", "127.0.0.1"));
        }
    }

    /// <summary>A plain HTTP client over the network (no redirects followed, so tests see them).</summary>
    public HttpClient Http(string? bearer = null, HttpMessageHandler? handler = null)
    {
        var client = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false })
        {
            BaseAddress = BaseAddress,
        };
        if (bearer is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    public HttpClient Admin() => Http(AdminToken);

    /// <summary>Creates a user (as the admin) and returns a personal access token for them.</summary>
    public async Task<string> UserTokenAsync(string email, string password = "user-password-1", bool platformAdmin = false)
    {
        var admin = Admin();
        var created = await admin.PostAsJsonAsync("/api/v1/users", new { email, password, platformAdmin });
        if (created.StatusCode != System.Net.HttpStatusCode.Conflict) created.EnsureSuccessStatusCode();
        var access = await PasswordGrantAsync(email, password);
        var tokens = await Http(access).PostAsJsonAsync("/api/v1/me/tokens", new { name = "tests", expiresInDays = 30 });
        tokens.EnsureSuccessStatusCode();
        return (await tokens.Content.ReadFromJsonAsync<Contracts.CreatedTokenResponse>())!.Token;
    }

    public async Task<string> PasswordGrantAsync(string email, string password)
    {
        var response = await Http().PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["client_id"] = "platform-cli",
            ["username"] = email, ["password"] = password, ["scope"] = "offline_access platform",
        }));
        var body = await response.Content.ReadFromJsonAsync<Dictionary<string, System.Text.Json.JsonElement>>();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"Password grant failed: {response.StatusCode}");
        return body!["access_token"].GetString()!;
    }

    public static string PostgresBase =>
        Environment.GetEnvironmentVariable("PLATFORM_TEST_POSTGRES")
        ?? throw new InvalidOperationException(
            "PLATFORM_TEST_POSTGRES is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL.");

    /// <summary>A new database on the test PostgreSQL; its connection string.</summary>
    public static string CreateDatabase()
    {
        var name = "platform_" + Guid.NewGuid().ToString("N")[..12];
        using (var conn = new NpgsqlConnection(PostgresBase))
        {
            conn.Open();
            using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", conn);
            cmd.ExecuteNonQuery();
        }
        return new NpgsqlConnectionStringBuilder(PostgresBase) { Database = name }.ConnectionString;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
    }

    /// <summary>
    /// A stopped PostgreSQL host leaves its pooled connections open for minutes (Npgsql prunes idle ones slowly), about a
    /// dozen each; with dozens of hosts in one test run the server's max_connections is reached. The pools are cleared
    /// (idle connections closed now, busy ones of other hosts when they are returned: those reconnect).
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Provider == Provider.Postgres) NpgsqlConnection.ClearAllPools();
    }
}
