using System.Text.Json;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Platform.Contracts;

namespace Platform.Data;

public sealed class PlatformDbContext(DbContextOptions<PlatformDbContext> options)
    : IdentityDbContext<PlatformUser>(options)
{
    public DbSet<Team> Teams => Set<Team>();
    public DbSet<Project> Projects => Set<Project>();
    public DbSet<Membership> Memberships => Set<Membership>();
    public DbSet<App> Apps => Set<App>();
    public DbSet<PersonalAccessToken> PersonalAccessTokens => Set<PersonalAccessToken>();
    public DbSet<NodeJoinToken> NodeJoinTokens => Set<NodeJoinToken>();
    public DbSet<Node> Nodes => Set<Node>();
    public DbSet<Instance> Instances => Set<Instance>();
    public DbSet<Build> Builds => Set<Build>();
    public DbSet<Release> Releases => Set<Release>();
    public DbSet<Rollout> Rollouts => Set<Rollout>();
    public DbSet<AppEvent> AppEvents => Set<AppEvent>();
    public DbSet<CustomDomain> CustomDomains => Set<CustomDomain>();
    public DbSet<AcmeChallenge> AcmeChallenges => Set<AcmeChallenge>();
    public DbSet<AppRequestMinute> AppRequestMinutes => Set<AppRequestMinute>();
    public DbSet<IngressCertificate> IngressCertificates => Set<IngressCertificate>();
    public DbSet<AuditEvent> AuditEvents => Set<AuditEvent>();
    public DbSet<RegistryRepository> RegistryRepositories => Set<RegistryRepository>();
    public DbSet<RegistryBlob> RegistryBlobs => Set<RegistryBlob>();
    public DbSet<RegistryRepositoryBlob> RegistryRepositoryBlobs => Set<RegistryRepositoryBlob>();
    public DbSet<RegistryManifest> RegistryManifests => Set<RegistryManifest>();
    public DbSet<RegistryManifestReference> RegistryManifestReferences => Set<RegistryManifestReference>();
    public DbSet<RegistryTag> RegistryTags => Set<RegistryTag>();
    public DbSet<RegistryUpload> RegistryUploads => Set<RegistryUpload>();
    public DbSet<ClusterSetting> ClusterSettings => Set<ClusterSetting>();
    public DbSet<ApiReplica> ApiReplicas => Set<ApiReplica>();

    /// <summary>Every DateTime is UTC; SQLite forgets the kind, so it is restored on read.</summary>
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<UtcDateTimeConverter>();
    }

    private sealed class UtcDateTimeConverter() : Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));

    private static readonly Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<ProbeSpec?, string?> ProbeConverter = new(
        v => v == null ? null : JsonSerializer.Serialize(v, JsonSerializerOptions.Default),
        v => v == null ? null : JsonSerializer.Deserialize<ProbeSpec>(v, JsonSerializerOptions.Default));

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.UseOpenIddict();

        builder.Entity<Team>(e =>
        {
            e.ToTable("teams");
            e.Property(t => t.Name).HasMaxLength(Names.MaxLabelLength);
            e.HasIndex(t => t.Name).IsUnique();
            e.OwnsOne(t => t.Quota, q => q.ToTable("team_quotas"));
            e.Property(t => t.DomainSuffixes).HasMaxLength(4096).HasConversion(
                v => JsonSerializer.Serialize(v, JsonSerializerOptions.Default),
                v => JsonSerializer.Deserialize<List<string>>(v, JsonSerializerOptions.Default) ?? new(),
                new ValueComparer<List<string>>((a, b) => a!.SequenceEqual(b!), v => v.Aggregate(0, (h, x) => HashCode.Combine(h, x.GetHashCode())), v => v.ToList()));
        });

        builder.Entity<Project>(e =>
        {
            e.ToTable("projects");
            e.Property(p => p.Name).HasMaxLength(Names.MaxLabelLength);
            e.HasIndex(p => new { p.TeamId, p.Name }).IsUnique();
            e.HasOne(p => p.Team).WithMany().HasForeignKey(p => p.TeamId).OnDelete(DeleteBehavior.Cascade);
            e.OwnsOne(p => p.Quota, q => q.ToTable("project_quotas"));
        });

        builder.Entity<Membership>(e =>
        {
            e.ToTable("memberships");
            e.Property(m => m.Role).HasConversion<int>();
            e.HasIndex(m => new { m.UserId, m.TeamId, m.ProjectId }).IsUnique();
            e.HasIndex(m => new { m.TeamId, m.ProjectId });
            e.HasOne(m => m.User).WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne(m => m.Team).WithMany().HasForeignKey(m => m.TeamId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne(m => m.Project).WithMany().HasForeignKey(m => m.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<App>(e =>
        {
            // A probe is a small immutable record: stored as its JSON (records compare by value, so no comparer is needed).
            e.ToTable("apps");
            e.Property(a => a.Name).HasMaxLength(Names.MaxLabelLength);
            e.Property(a => a.Image).HasMaxLength(512);
            e.Property(a => a.HealthCheckPath).HasMaxLength(Quantities.MaxHealthCheckPathLength);
            e.Property(a => a.ReadinessProbe).HasConversion(ProbeConverter).HasMaxLength(2048);
            e.Property(a => a.LivenessProbe).HasConversion(ProbeConverter).HasMaxLength(2048);
            e.Property(a => a.StopGraceSeconds).HasDefaultValue(10);
            e.Property(a => a.ProgressDeadlineSeconds).HasDefaultValue(120);
            e.Property(a => a.SchedulingMessage).HasMaxLength(512);
            e.Property(a => a.SourceUrl).HasMaxLength(2048);
            e.Property(a => a.Branch).HasMaxLength(255);
            e.Property(a => a.DockerfilePath).HasMaxLength(255);
            e.Property(a => a.WebhookSecret).HasMaxLength(1024);
            e.Property(a => a.SourceSetBy).HasMaxLength(64);
            e.Ignore(a => a.HasRepository);
            e.HasIndex(a => new { a.ProjectId, a.Name }).IsUnique();
            e.Property(a => a.Host).HasMaxLength(Names.MaxLabelLength);
            e.HasIndex(a => a.Host).IsUnique();
            e.HasOne(a => a.Project).WithMany().HasForeignKey(a => a.ProjectId).OnDelete(DeleteBehavior.Cascade);
            e.Property(a => a.Env).HasConversion(
                v => JsonSerializer.Serialize(v, JsonSerializerOptions.Default),
                v => JsonSerializer.Deserialize<Dictionary<string, string>>(v, JsonSerializerOptions.Default) ?? new(),
                new ValueComparer<Dictionary<string, string>>(
                    (a, b) => a!.Count == b!.Count && !a.Except(b).Any(),
                    v => v.Aggregate(0, (h, kv) => HashCode.Combine(h, kv.Key.GetHashCode(), kv.Value.GetHashCode())),
                    v => new Dictionary<string, string>(v)));
        });

        builder.Entity<PersonalAccessToken>(e =>
        {
            e.ToTable("personal_access_tokens");
            e.Property(t => t.Name).HasMaxLength(100);
            e.Property(t => t.Prefix).HasMaxLength(16);
            e.Property(t => t.Hash).HasMaxLength(64);
            e.HasIndex(t => t.Hash).IsUnique();
            e.HasIndex(t => t.UserId);
            e.HasOne(t => t.User).WithMany().HasForeignKey(t => t.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<NodeJoinToken>(e =>
        {
            e.ToTable("node_join_tokens");
            e.Property(t => t.Hash).HasMaxLength(64);
            e.HasIndex(t => t.Hash).IsUnique();
        });

        builder.Entity<Node>(e =>
        {
            e.ToTable("nodes");
            e.Property(n => n.Name).HasMaxLength(Names.MaxLabelLength);
            e.HasIndex(n => n.Name).IsUnique();
            e.Property(n => n.ProtectedControlKey).HasMaxLength(1024);
        });

        builder.Entity<Build>(e =>
        {
            e.ToTable("builds");
            e.HasOne(b => b.App).WithMany().HasForeignKey(b => b.AppId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(b => new { b.AppId, b.Number }).IsUnique();
            e.Property(b => b.Commit).HasMaxLength(64);
            e.Property(b => b.State).HasMaxLength(16);
            e.Property(b => b.Reason).HasMaxLength(1024);
            e.Property(b => b.ClaimedBy).HasMaxLength(100);
            e.Property(b => b.ImageDigest).HasMaxLength(80);
            e.Property(b => b.CreatedBy).HasMaxLength(64);
            e.Property(b => b.Trigger).HasMaxLength(16);
            e.Property(b => b.Source).HasMaxLength(2048);
            e.HasIndex(b => b.State);
        });

        builder.Entity<Rollout>(e =>
        {
            e.ToTable("rollouts");
            e.Property(r => r.State).HasMaxLength(16);
            e.Property(r => r.Message).HasMaxLength(1024);
            e.HasIndex(r => new { r.AppId, r.Generation }).IsUnique();
            e.HasIndex(r => r.State);
            e.HasOne(r => r.App).WithMany().HasForeignKey(r => r.AppId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<CustomDomain>(e =>
        {
            e.ToTable("app_domains");
            e.Property(d => d.Host).HasMaxLength(Platform.Contracts.DomainNames.MaxLength);
            e.HasIndex(d => d.Host).IsUnique();
            e.Property(d => d.State).HasMaxLength(16);
            e.Property(d => d.Source).HasMaxLength(16);
            e.Property(d => d.Message).HasMaxLength(2048);
            e.Property(d => d.CertificatePem).HasMaxLength(65536);
            e.Property(d => d.KeyPem).HasMaxLength(16384);
            e.Property(d => d.LeaseHolder).HasMaxLength(128);
            e.Property(d => d.CreatedBy).HasMaxLength(320);
            e.HasIndex(d => d.NextAttemptAt);
            e.HasOne(d => d.App).WithMany().HasForeignKey(d => d.AppId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<IngressCertificate>(e =>
        {
            e.ToTable("ingress_certificates");
            e.Property(c => c.Id).HasMaxLength(32);
            e.Property(c => c.CertificatePem).HasMaxLength(65536);
            e.Property(c => c.KeyPem).HasMaxLength(16384);
        });

        builder.Entity<ClusterSetting>(e =>
        {
            e.ToTable("cluster_settings");
            e.HasKey(x => x.Key);
            e.Property(x => x.Key).HasMaxLength(64);
            e.Property(x => x.Value).HasMaxLength(256);
        });

        builder.Entity<ApiReplica>(e =>
        {
            e.ToTable("api_replicas");
            e.HasKey(x => x.Id);
            e.Property(x => x.Name).HasMaxLength(256);
            e.Property(x => x.Roles).HasMaxLength(256);
        });

        builder.Entity<AppRequestMinute>(e =>
        {
            e.ToTable("app_request_minutes");
            e.HasKey(m => new { m.AppId, m.Minute, m.Replica });
            e.HasIndex(m => m.Minute);
            e.HasIndex(m => new { m.Replica, m.Minute });
        });

        builder.Entity<AcmeChallenge>(e =>
        {
            e.ToTable("acme_challenges");
            e.HasKey(c => c.Token);
            e.Property(c => c.Token).HasMaxLength(256);
            e.Property(c => c.KeyAuthorization).HasMaxLength(512);
            e.Property(c => c.Host).HasMaxLength(Platform.Contracts.DomainNames.MaxLength);
        });

        builder.Entity<AppEvent>(e =>
        {
            e.ToTable("app_events");
            e.Property(x => x.Kind).HasMaxLength(32);
            e.Property(x => x.Message).HasMaxLength(1024);
            e.HasIndex(x => new { x.AppId, x.Id });
            e.HasOne(x => x.App).WithMany().HasForeignKey(x => x.AppId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<Release>(e =>
        {
            e.ToTable("releases");
            e.HasOne(r => r.App).WithMany().HasForeignKey(r => r.AppId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(r => new { r.AppId, r.Version }).IsUnique();
            e.Property(r => r.Image).HasMaxLength(512);
            e.Property(r => r.Commit).HasMaxLength(64);
            e.Property(r => r.Description).HasMaxLength(256);
            e.Property(r => r.CreatedBy).HasMaxLength(64);
            e.Property(r => r.FailureReason).HasMaxLength(1024);
        });

        builder.Entity<Instance>(e =>
        {
            e.ToTable("instances");
            e.HasOne(i => i.App).WithMany().HasForeignKey(i => i.AppId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne(i => i.Node).WithMany().HasForeignKey(i => i.NodeId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(i => i.AppId);
            e.HasIndex(i => i.NodeId);
            e.Property(i => i.ImageRepository).HasMaxLength(255);
            e.Property(i => i.ImageDigest).HasMaxLength(80);
            e.Property(i => i.State).HasMaxLength(16);
            e.Property(i => i.Reason).HasMaxLength(64);
            e.Property(i => i.Message).HasMaxLength(1024);
        });

        builder.Entity<RegistryRepository>(e =>
        {
            e.ToTable("registry_repositories");
            e.Property(r => r.Name).HasMaxLength(255);
            e.HasIndex(r => r.Name).IsUnique();
            e.HasIndex(r => r.TeamId);
            e.HasOne<Team>().WithMany().HasForeignKey(r => r.TeamId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<Project>().WithMany().HasForeignKey(r => r.ProjectId).OnDelete(DeleteBehavior.Cascade);
        });
        builder.Entity<RegistryBlob>(e =>
        {
            e.ToTable("registry_blobs");
            e.HasKey(b => b.Digest);
            e.Property(b => b.Digest).HasMaxLength(80);
        });
        builder.Entity<RegistryRepositoryBlob>(e =>
        {
            e.ToTable("registry_repository_blobs");
            e.HasKey(b => new { b.RepositoryId, b.Digest });
            e.Property(b => b.Digest).HasMaxLength(80);
            e.HasIndex(b => b.Digest);
            e.HasOne<RegistryRepository>().WithMany().HasForeignKey(b => b.RepositoryId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<RegistryBlob>().WithMany().HasForeignKey(b => b.Digest).OnDelete(DeleteBehavior.Cascade);
        });
        builder.Entity<RegistryManifest>(e =>
        {
            e.ToTable("registry_manifests");
            e.Property(m => m.Digest).HasMaxLength(80);
            e.Property(m => m.MediaType).HasMaxLength(255);
            e.Property(m => m.ArtifactType).HasMaxLength(255);
            e.Property(m => m.SubjectDigest).HasMaxLength(80);
            e.HasIndex(m => new { m.RepositoryId, m.Digest }).IsUnique();
            e.HasIndex(m => new { m.RepositoryId, m.SubjectDigest });
            e.HasOne<RegistryRepository>().WithMany().HasForeignKey(m => m.RepositoryId).OnDelete(DeleteBehavior.Cascade);
        });
        builder.Entity<RegistryManifestReference>(e =>
        {
            e.ToTable("registry_manifest_references");
            e.HasKey(r => new { r.ManifestId, r.Digest });
            e.Property(r => r.Digest).HasMaxLength(80);
            e.HasIndex(r => r.Digest);
            e.HasOne<RegistryManifest>().WithMany().HasForeignKey(r => r.ManifestId).OnDelete(DeleteBehavior.Cascade);
        });
        builder.Entity<RegistryTag>(e =>
        {
            e.ToTable("registry_tags");
            e.HasKey(t => new { t.RepositoryId, t.Name });
            e.Property(t => t.Name).HasMaxLength(128);
            e.Property(t => t.ManifestDigest).HasMaxLength(80);
            e.HasIndex(t => new { t.RepositoryId, t.ManifestDigest });
            e.HasOne<RegistryRepository>().WithMany().HasForeignKey(t => t.RepositoryId).OnDelete(DeleteBehavior.Cascade);
        });
        builder.Entity<RegistryUpload>(e =>
        {
            e.ToTable("registry_uploads");
            e.HasOne<RegistryRepository>().WithMany().HasForeignKey(u => u.RepositoryId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<AuditEvent>(e =>
        {
            e.ToTable("audit_events");
            e.Property(a => a.Action).HasMaxLength(100);
            e.Property(a => a.Target).HasMaxLength(400);
            e.Property(a => a.RequestPath).HasMaxLength(400);
            e.Property(a => a.Outcome).HasMaxLength(20);
            e.Property(a => a.ActorEmail).HasMaxLength(256);
            e.HasIndex(a => new { a.TeamId, a.Id });
            e.HasIndex(a => a.At);
        });
    }
}
