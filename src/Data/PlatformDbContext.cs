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
    public DbSet<AuditEvent> AuditEvents => Set<AuditEvent>();

    /// <summary>Every DateTime is UTC; SQLite forgets the kind, so it is restored on read.</summary>
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<UtcDateTimeConverter>();
    }

    private sealed class UtcDateTimeConverter() : Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));

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
            e.ToTable("apps");
            e.Property(a => a.Name).HasMaxLength(Names.MaxLabelLength);
            e.Property(a => a.Image).HasMaxLength(512);
            e.Property(a => a.HealthCheckPath).HasMaxLength(Quantities.MaxHealthCheckPathLength);
            e.HasIndex(a => new { a.ProjectId, a.Name }).IsUnique();
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
        });

        builder.Entity<AuditEvent>(e =>
        {
            e.ToTable("audit_events");
            e.Property(a => a.Action).HasMaxLength(100);
            e.Property(a => a.Target).HasMaxLength(400);
            e.Property(a => a.Outcome).HasMaxLength(20);
            e.Property(a => a.ActorEmail).HasMaxLength(256);
            e.HasIndex(a => new { a.TeamId, a.Id });
            e.HasIndex(a => a.At);
        });
    }
}
