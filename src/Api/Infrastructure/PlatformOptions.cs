using Microsoft.Extensions.Options;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Platform.Api.Infrastructure;

/// <summary>The <c>Platform</c> configuration section (docs/operations.md lists the settings; docs/architecture.md says what each part does with them).</summary>
public sealed class PlatformOptions
{
    public const string Section = "Platform";

    /// <summary>Where the SQLite file, keys, registry blobs, git repositories and caches live.</summary>
    public string DataDir { get; set; } = "./data";

    /// <summary>
    /// This replica's name among the Api replicas, the same across its restarts (builds it claimed are its own to
    /// recover at start); empty: the machine's host name. Replicas on one machine need names of their own.
    /// </summary>
    public string ReplicaName { get; set; } = "";

    /// <summary><see cref="ReplicaName"/>, or the host name.</summary>
    public string EffectiveReplicaName => ReplicaName is "" ? Environment.MachineName : ReplicaName;

    public DatabaseOptions Database { get; set; } = new();
    public BootstrapOptions Bootstrap { get; set; } = new();
    public IngressOptions Ingress { get; set; } = new();
    public PortalOptions Portal { get; set; } = new();
    public QuotaDefaults Quotas { get; set; } = new();
    public HousekeepingOptions Housekeeping { get; set; } = new();
    public RegistryOptions Registry { get; set; } = new();
    public NodesOptions Nodes { get; set; } = new();
    public BuildsOptions Builds { get; set; } = new();
    public GitOptions Git { get; set; } = new();
    public AcmeOptions Acme { get; set; } = new();
    public DomainsOptions Domains { get; set; } = new();

    /// <summary>
    /// The Api's public base URL, used as the OIDC issuer. Set it when the Api runs behind a load
    /// balancer or on several replicas so tokens name one issuer; unset, the request's URL is used.
    /// </summary>
    public string? PublicUrl { get; set; }

    /// <summary>Largest JSON body the REST API accepts, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>Lifetime of OIDC access tokens.</summary>
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Longest a personal access token may live.</summary>
    public int MaxTokenLifetimeDays { get; set; } = 366;

    public string FullDataDir => Path.GetFullPath(DataDir);
}

public enum DatabaseProvider { Sqlite, Postgres }

public sealed class DatabaseOptions
{
    public DatabaseProvider Provider { get; set; } = DatabaseProvider.Sqlite;
}

public sealed class BootstrapOptions
{
    /// <summary>The first platform admin, created at start when no user exists.</summary>
    public string? AdminEmail { get; set; }
    public string? AdminPassword { get; set; }
    /// <summary>An optional personal access token for that admin (automation): "plat_" and at least 27 more characters.</summary>
    public string? AdminToken { get; set; }
}

public sealed class IngressOptions
{
    public string Domain { get; set; } = "apps.localhost";
    public string Url { get; set; } = "http://127.0.0.1:8080";
    /// <summary>The router's HTTPS listener (SNI picks each host's certificate); null: HTTP only.</summary>
    public string? HttpsUrl { get; set; }
    /// <summary>Largest request body the router passes to an app (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; set; } = 100 * 1024 * 1024;
    /// <summary>Largest request head (request line and headers) the router takes (431 beyond).</summary>
    public int MaxRequestHeaderBytes { get; set; } = 32 * 1024;
    /// <summary>How long an app may stay silent (no bytes either way) before the router gives up on the request (504).</summary>
    public int UpstreamTimeoutSeconds { get; set; } = 120;
    /// <summary>One log line per request (the access log, category Platform.Api.Routing.Router, event 54).</summary>
    public bool AccessLog { get; set; } = true;
}

/// <summary>Where custom domains' certificates come from (RFC 8555, http-01 answered by the router).</summary>
public sealed class AcmeOptions
{
    /// <summary>The ACME directory (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory); null: no ACME, certificates are uploaded.</summary>
    public string? DirectoryUrl { get; set; }
    /// <summary>The account's contact (optional).</summary>
    public string? Email { get; set; }
    /// <summary>A certificate is renewed this many days before it expires.</summary>
    public int RenewBeforeDays { get; set; } = 30;
    /// <summary>A PEM file of root certificates to trust for the directory's HTTPS besides the system's (a private CA, or a test server).</summary>
    public string? TrustedCaFile { get; set; }
}

public sealed class DomainsOptions
{
    /// <summary>Custom domains one app may hold.</summary>
    public int MaxPerApp { get; set; } = 20;
}

public sealed class PortalOptions
{
    /// <summary>Base URL of the Portal; its OIDC redirect URIs are registered under it.</summary>
    public string Url { get; set; } = "http://localhost:5000";
}

/// <summary>The quota a new team gets until a platform admin sets its own.</summary>
public sealed class QuotaDefaults
{
    public long MemoryMiB { get; set; } = 4096;
    public long CpuMillicores { get; set; } = 4000;
    public long Instances { get; set; } = 10;
    public long Apps { get; set; } = 10;
    public long Projects { get; set; } = 5;
    public long RegistryGiB { get; set; } = 10;
    public long ConcurrentBuilds { get; set; } = 2;
}

/// <summary>How builds run; a team's quota can set its own limits (0 there means these).</summary>
public sealed class BuildsOptions
{
    /// <summary>Builds this Api replica runs at once (its Hangfire workers on the "builds" queue; 0 runs none: a replica that only serves).</summary>
    public int Workers { get; set; } = 4;
    public long MemoryMiB { get; set; } = 2048;
    public long CpuMillicores { get; set; } = 2000;
    public long Pids { get; set; } = 1024;
    public long TimeoutSeconds { get; set; } = 1800;
    /// <summary>Name of the cgroup (under each controller's root) that holds one cgroup per running build.</summary>
    public string CgroupName { get; set; } = "platform-builds";
    /// <summary>A Running build whose job has not written a heartbeat for this long lost its Api: it is retried once, then failed.</summary>
    public int StaleAfterSeconds { get; set; } = 30;
    /// <summary>A build's log keeps at most this much of its steps' output.</summary>
    public long MaxLogBytes { get; set; } = 16L * 1024 * 1024;
    /// <summary>
    /// A step (clone, bud, push) that prints more than this is stopped and the build fails: past the log's limit its
    /// output is only read and dropped, and this bounds that work too. Lines are cut at 64 KiB either way.
    /// </summary>
    public long MaxStepOutputBytes { get; set; } = 256L * 1024 * 1024;
    /// <summary>
    /// Registries (host or host:port, as a FROM line spells them) builds may pull bases from besides the platform's;
    /// pulled without the platform's credentials. Any other registry in a FROM (or COPY --from) is refused.
    /// </summary>
    public List<string> UpstreamRegistries { get; set; } = [];
    /// <summary>
    /// "isolated" (default): RUN steps get their own network name-space behind NAT that reaches the internet but
    /// not this machine's addresses nor private, loopback or link-local ones; "none": no network at all.
    /// </summary>
    public string Network { get; set; } = "isolated";
    /// <summary>The build network's bridge and subnet (a /24; .1 is the bridge).</summary>
    public string Bridge { get; set; } = "pbuild0";
    public string Subnet { get; set; } = "10.255.254.0/24";
    /// <summary>
    /// Hosts (names or addresses) webhook builds may clone from although they resolve to private or
    /// loopback addresses: an in-house git server. Everything else private is refused.
    /// </summary>
    public List<string> AllowedSourceHosts { get; set; } = [];
    /// <summary>
    /// The unprivileged account buildah runs as (rootless; see <see cref="Builds.BuildUser"/>). The Api makes it, with
    /// 65536 subordinate ids from <see cref="SubordinateIdStart"/>, at the first build when it is missing.
    /// </summary>
    public string User { get; set; } = "platform-build";
    /// <summary>First id of the build account's subordinate range; below 1,000,000, where the nodes' project ranges start.</summary>
    public long SubordinateIdStart { get; set; } = 500_000;
    /// <summary>
    /// Where the build account's folders live (buildah storage, build scratch). Empty: <c>{DataDir}/build-work</c>
    /// when others may pass every folder above the data folder, else <c>/var/lib/platform/build-work-{hash of DataDir}</c>
    /// (a data folder under /root, mode 0700, is closed to the account).
    /// </summary>
    public string WorkDir { get; set; } = "";
}

public sealed class HousekeepingOptions
{
    /// <summary>Audit events older than this are deleted by the housekeeping job.</summary>
    public int AuditRetentionDays { get; set; } = 365;
    /// <summary>Cron expression of the housekeeping job (UTC).</summary>
    public string Schedule { get; set; } = "17 3 * * *";
}

public sealed class RegistryOptions
{
    /// <summary>Largest blob (layer) the registry accepts, in bytes.</summary>
    public long MaxBlobBytes { get; set; } = 10L * 1024 * 1024 * 1024;
    /// <summary>Upload sessions untouched this long are abandoned and removed.</summary>
    public TimeSpan UploadExpiry { get; set; } = TimeSpan.FromHours(24);
    /// <summary>Unreferenced content younger than this is kept: a push in flight uploads blobs before its manifest.</summary>
    public TimeSpan GcGracePeriod { get; set; } = TimeSpan.FromHours(1);
    /// <summary>Cron expression of the garbage collector (UTC).</summary>
    public string GcSchedule { get; set; } = "41 * * * *";
    /// <summary>Upload sessions a team may hold open at once (a push opens one per layer in parallel); abandoned ones expire after <see cref="UploadExpiry"/>.</summary>
    public int MaxUploadSessionsPerTeam { get; set; } = 32;
    /// <summary>Blobs in an S3-compatible bucket instead of the data folder (when <see cref="S3Options.Bucket"/> is set).</summary>
    public S3Options S3 { get; set; } = new();
}

/// <summary>An S3-compatible bucket for the registry's blobs (Registry/S3BlobStore.cs; docs/operations.md).</summary>
public sealed class S3Options
{
    /// <summary>The bucket; unset keeps the blobs on the data folder.</summary>
    public string? Bucket { get; set; }
    /// <summary>The S3 endpoint, e.g. <c>https://minio.internal:9000</c>; unset means AWS S3 in <see cref="Region"/>.</summary>
    public string? ServiceUrl { get; set; }
    public string Region { get; set; } = "us-east-1";
    /// <summary>The access key; unset uses the AWS SDK's own chain (<c>AWS_ACCESS_KEY_ID</c>…, a profile, an instance role).</summary>
    public string? AccessKey { get; set; }
    public string? SecretKey { get; set; }
    /// <summary>Prepended to every object name, e.g. <c>platform/</c>: several installations may share a bucket.</summary>
    public string Prefix { get; set; } = "";
    /// <summary>Blobs larger than this go up as a multipart upload in parts of this size (S3 allows 5 MiB to 5 GiB).</summary>
    public int PartSizeMiB { get; set; } = 64;
    /// <summary>Path-style URLs (<c>{ServiceUrl}/{bucket}/{key}</c>), which S3-compatible servers expect; AWS S3 takes both.</summary>
    public bool ForcePathStyle { get; set; } = true;
}

public sealed class GitOptions
{
    /// <summary>Largest an app's repository may grow, in MiB (its objects): a push that would pass it is refused and leaves the repository as it was.</summary>
    public int MaxRepositoryMiB { get; set; } = 1024;
}

public sealed class NodesOptions
{
    /// <summary>How often agents report (told to them in every heartbeat answer).</summary>
    public int HeartbeatSeconds { get; set; } = 10;
    /// <summary>A node with no heartbeat for this long is NotReady.</summary>
    public int NotReadyAfterSeconds { get; set; } = 40;
    /// <summary>How often the scheduler's background pass runs (NotReady nodes, freed capacity, finished rollouts).</summary>
    public int ReconcileSeconds { get; set; } = 2;
    /// <summary>How long an agent's long-poll for its desired state is held open when nothing changes.</summary>
    public int LongPollSeconds { get; set; } = 25;
}

/// <summary>Bad configuration fails at boot with every problem listed, not at first use.</summary>
public sealed class PlatformOptionsValidator : IValidateOptions<PlatformOptions>
{
    public ValidateOptionsResult Validate(string? name, PlatformOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.DataDir))
            errors.Add("Platform:DataDir must be set.");
        if (o.ReplicaName.Length > 100 || o.ReplicaName.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or ':')))
            errors.Add("Platform:ReplicaName: at most 100 letters, digits, '.', '-', '_' or ':'.");
        if (!Uri.TryCreate(o.Ingress.Url, UriKind.Absolute, out _))
            errors.Add($"Platform:Ingress:Url '{o.Ingress.Url}' is not an absolute URL.");
        if (!Uri.TryCreate(o.Portal.Url, UriKind.Absolute, out _))
            errors.Add($"Platform:Portal:Url '{o.Portal.Url}' is not an absolute URL.");
        if (o.PublicUrl is not null && !Uri.TryCreate(o.PublicUrl, UriKind.Absolute, out _))
            errors.Add($"Platform:PublicUrl '{o.PublicUrl}' is not an absolute URL.");
        if (string.IsNullOrWhiteSpace(o.Ingress.Domain))
            errors.Add("Platform:Ingress:Domain must be set.");
        if (o.Ingress.HttpsUrl is { } httpsUrl && (!Uri.TryCreate(httpsUrl, UriKind.Absolute, out var https) || https.Scheme != "https"))
            errors.Add($"Platform:Ingress:HttpsUrl '{httpsUrl}' must be an absolute https:// URL.");
        if (o.Ingress.MaxRequestBodyBytes < 1)
            errors.Add("Platform:Ingress:MaxRequestBodyBytes must be positive.");
        if (o.Ingress.MaxRequestHeaderBytes < 1024)
            errors.Add("Platform:Ingress:MaxRequestHeaderBytes must be at least 1024.");
        if (o.Ingress.UpstreamTimeoutSeconds < 1)
            errors.Add("Platform:Ingress:UpstreamTimeoutSeconds must be at least 1.");
        if (o.Acme.DirectoryUrl is { } directory && (!Uri.TryCreate(directory, UriKind.Absolute, out var acme) || acme.Scheme != "https"))
            errors.Add($"Platform:Acme:DirectoryUrl '{directory}' must be an absolute https:// URL.");
        if (o.Acme.TrustedCaFile is { } ca && !File.Exists(ca))
            errors.Add($"Platform:Acme:TrustedCaFile '{ca}' does not exist.");
        if (o.Acme.RenewBeforeDays is < 1 or > 365)
            errors.Add("Platform:Acme:RenewBeforeDays must be between 1 and 365.");
        if (o.Domains.MaxPerApp < 0)
            errors.Add("Platform:Domains:MaxPerApp must not be negative.");
        if (o.Bootstrap.AdminEmail is not null && string.IsNullOrWhiteSpace(o.Bootstrap.AdminPassword))
            errors.Add("Platform:Bootstrap:AdminPassword must be set with Platform:Bootstrap:AdminEmail.");
        if (o.Bootstrap.AdminToken is { } t && (t.Length < 32 || !t.StartsWith("plat_", StringComparison.Ordinal)))
            errors.Add("Platform:Bootstrap:AdminToken must start with 'plat_' and be at least 32 characters.");
        if (o.MaxRequestBodyBytes is < 1024 or > 16 * 1024 * 1024)
            errors.Add("Platform:MaxRequestBodyBytes must be between 1 KiB and 16 MiB.");
        if (o.Registry.MaxBlobBytes < 1024)
            errors.Add("Platform:Registry:MaxBlobBytes must be at least 1024.");
        if (o.Registry.S3 is { Bucket: not null } s3)
        {
            if (s3.ServiceUrl is { } url && (!Uri.TryCreate(url, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https")))
                errors.Add($"Platform:Registry:S3:ServiceUrl '{url}' must be an absolute http:// or https:// URL.");
            if ((s3.AccessKey is null) != (s3.SecretKey is null))
                errors.Add("Platform:Registry:S3:AccessKey and SecretKey are set together, or neither (the AWS SDK's own credentials).");
            if (s3.PartSizeMiB is < 5 or > 5120)
                errors.Add("Platform:Registry:S3:PartSizeMiB must be between 5 and 5120 (S3's limits for a part).");
            else if (o.Registry.MaxBlobBytes > 10_000L * ((long)s3.PartSizeMiB << 20))
                errors.Add($"Platform:Registry:S3:PartSizeMiB {s3.PartSizeMiB} is too small for Platform:Registry:MaxBlobBytes: S3 takes at most 10,000 parts, so a blob that large needs parts of at least {(o.Registry.MaxBlobBytes / 10_000 >> 20) + 1} MiB.");
            if (s3.Prefix.StartsWith('/') || (s3.Prefix.Length > 0 && !s3.Prefix.EndsWith('/')))
                errors.Add("Platform:Registry:S3:Prefix must not start with '/' and, when set, must end with '/' (e.g. 'platform/').");
        }
        if (o.Registry.GcGracePeriod < TimeSpan.Zero || o.Registry.UploadExpiry <= TimeSpan.Zero)
            errors.Add("Platform:Registry:GcGracePeriod must not be negative and UploadExpiry must be positive.");
        if (o.Git.MaxRepositoryMiB < 1)
            errors.Add("Platform:Git:MaxRepositoryMiB must be at least 1.");
        if (o.Registry.MaxUploadSessionsPerTeam < 1)
            errors.Add("Platform:Registry:MaxUploadSessionsPerTeam must be at least 1.");
        if (o.Nodes.HeartbeatSeconds < 1 || o.Nodes.NotReadyAfterSeconds <= o.Nodes.HeartbeatSeconds)
            errors.Add("Platform:Nodes:HeartbeatSeconds must be at least 1 and below NotReadyAfterSeconds.");
        if (o.Housekeeping.AuditRetentionDays < 1)
            errors.Add("Platform:Housekeeping:AuditRetentionDays must be at least 1.");
        if (o.Builds.Workers < 0 || o.Builds.MemoryMiB < 64 || o.Builds.CpuMillicores < 100 || o.Builds.Pids < 16 || o.Builds.TimeoutSeconds < 5)
            errors.Add("Platform:Builds: Workers ≥ 0, MemoryMiB ≥ 64, CpuMillicores ≥ 100, Pids ≥ 16 and TimeoutSeconds ≥ 5.");
        if (o.Builds.MaxLogBytes < 64 * 1024)
            errors.Add("Platform:Builds:MaxLogBytes must be at least 64 KiB.");
        if (o.Builds.MaxStepOutputBytes < o.Builds.MaxLogBytes)
            errors.Add("Platform:Builds:MaxStepOutputBytes must be at least Platform:Builds:MaxLogBytes.");
        foreach (var upstream in o.Builds.UpstreamRegistries.Where(u => !Builds.DockerfileBases.IsRegistryHost(u)))
            errors.Add($"Platform:Builds:UpstreamRegistries: '{upstream}' is not a registry host such as registry.example.com or 127.0.0.1:5000.");
        if (o.Builds.SubordinateIdStart < 65536 || o.Builds.SubordinateIdStart + Builds.BuildUser.SubordinateIds > 1_000_000)
            errors.Add("Platform:Builds:SubordinateIdStart must be between 65536 and 934464 (the nodes' project ranges start at 1,000,000).");
        if (!System.Text.RegularExpressions.Regex.IsMatch(o.Builds.User, "^[a-z_][a-z0-9_-]{0,30}$"))
            errors.Add($"Platform:Builds:User '{o.Builds.User}' is not an account name (lower-case letters, digits, '-' and '_').");
        if (o.Builds.WorkDir != "" && !Path.IsPathRooted(o.Builds.WorkDir))
            errors.Add("Platform:Builds:WorkDir must be an absolute path.");
        if (o.Builds.Network is not ("isolated" or "none"))
            errors.Add("Platform:Builds:Network must be 'isolated' or 'none'.");
        if (!Builds.BuildNetwork.TryParseSubnet(o.Builds.Subnet, out _))
            errors.Add($"Platform:Builds:Subnet '{o.Builds.Subnet}' is not an IPv4 /24 such as 10.255.254.0/24.");
        if (o.AccessTokenLifetime <= TimeSpan.Zero)
            errors.Add("Platform:AccessTokenLifetime must be positive.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public static class PlatformOptionsSetup
{
    /// <summary>
    /// Binds the <c>Platform</c> section and validates it before anything is built from it, so a bad setting
    /// stops the Api with the validator's message (every problem listed) rather than with whatever a
    /// component made from it throws first. Registers the options (validated again on start, for
    /// configuration a host adds later), the clock and the data folder's <see cref="DataLayout"/>.
    /// </summary>
    public static PlatformOptions AddPlatformOptions(this IHostApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(PlatformOptions.Section).Get<PlatformOptions>() ?? new PlatformOptions();
        var validator = new PlatformOptionsValidator();
        if (validator.Validate(Options.DefaultName, options) is { Failed: true } result)
            throw new OptionsValidationException(Options.DefaultName, typeof(PlatformOptions), result.Failures);
        var services = builder.Services;
        services.AddOptions<PlatformOptions>().BindConfiguration(PlatformOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PlatformOptions>>(validator);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => DataLayout.Of(sp.GetRequiredService<IOptions<PlatformOptions>>().Value));
        services.AddSingleton<DataFolderGuard>();
        Directory.CreateDirectory(options.FullDataDir);
        return options;
    }
}
