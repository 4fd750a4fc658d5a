using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class Registry : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "registry_blobs",
                columns: table => new
                {
                    Digest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    Size = table.Column<long>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_blobs", x => x.Digest);
                });

            migrationBuilder.CreateTable(
                name: "registry_repositories",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    TeamId = table.Column<Guid>(type: "TEXT", nullable: true),
                    ProjectId = table.Column<Guid>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_repositories", x => x.Id);
                    table.ForeignKey(
                        name: "FK_registry_repositories_projects_ProjectId",
                        column: x => x.ProjectId,
                        principalTable: "projects",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "FK_registry_repositories_teams_TeamId",
                        column: x => x.TeamId,
                        principalTable: "teams",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "registry_manifests",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    RepositoryId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Digest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    MediaType = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    Size = table.Column<long>(type: "INTEGER", nullable: false),
                    ArtifactType = table.Column<string>(type: "TEXT", maxLength: 255, nullable: true),
                    SubjectDigest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: true),
                    AnnotationsJson = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_manifests", x => x.Id);
                    table.ForeignKey(
                        name: "FK_registry_manifests_registry_repositories_RepositoryId",
                        column: x => x.RepositoryId,
                        principalTable: "registry_repositories",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "registry_repository_blobs",
                columns: table => new
                {
                    RepositoryId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Digest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_repository_blobs", x => new { x.RepositoryId, x.Digest });
                    table.ForeignKey(
                        name: "FK_registry_repository_blobs_registry_blobs_Digest",
                        column: x => x.Digest,
                        principalTable: "registry_blobs",
                        principalColumn: "Digest",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "FK_registry_repository_blobs_registry_repositories_RepositoryId",
                        column: x => x.RepositoryId,
                        principalTable: "registry_repositories",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "registry_tags",
                columns: table => new
                {
                    RepositoryId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    ManifestDigest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    UpdatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_tags", x => new { x.RepositoryId, x.Name });
                    table.ForeignKey(
                        name: "FK_registry_tags_registry_repositories_RepositoryId",
                        column: x => x.RepositoryId,
                        principalTable: "registry_repositories",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "registry_uploads",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    RepositoryId = table.Column<Guid>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    UpdatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_uploads", x => x.Id);
                    table.ForeignKey(
                        name: "FK_registry_uploads_registry_repositories_RepositoryId",
                        column: x => x.RepositoryId,
                        principalTable: "registry_repositories",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "registry_manifest_references",
                columns: table => new
                {
                    ManifestId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Digest = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    IsManifest = table.Column<bool>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_registry_manifest_references", x => new { x.ManifestId, x.Digest });
                    table.ForeignKey(
                        name: "FK_registry_manifest_references_registry_manifests_ManifestId",
                        column: x => x.ManifestId,
                        principalTable: "registry_manifests",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_registry_manifest_references_Digest",
                table: "registry_manifest_references",
                column: "Digest");

            migrationBuilder.CreateIndex(
                name: "IX_registry_manifests_RepositoryId_Digest",
                table: "registry_manifests",
                columns: new[] { "RepositoryId", "Digest" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_registry_manifests_RepositoryId_SubjectDigest",
                table: "registry_manifests",
                columns: new[] { "RepositoryId", "SubjectDigest" });

            migrationBuilder.CreateIndex(
                name: "IX_registry_repositories_Name",
                table: "registry_repositories",
                column: "Name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_registry_repositories_ProjectId",
                table: "registry_repositories",
                column: "ProjectId");

            migrationBuilder.CreateIndex(
                name: "IX_registry_repositories_TeamId",
                table: "registry_repositories",
                column: "TeamId");

            migrationBuilder.CreateIndex(
                name: "IX_registry_repository_blobs_Digest",
                table: "registry_repository_blobs",
                column: "Digest");

            migrationBuilder.CreateIndex(
                name: "IX_registry_tags_RepositoryId_ManifestDigest",
                table: "registry_tags",
                columns: new[] { "RepositoryId", "ManifestDigest" });

            migrationBuilder.CreateIndex(
                name: "IX_registry_uploads_RepositoryId",
                table: "registry_uploads",
                column: "RepositoryId");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "registry_manifest_references");

            migrationBuilder.DropTable(
                name: "registry_repository_blobs");

            migrationBuilder.DropTable(
                name: "registry_tags");

            migrationBuilder.DropTable(
                name: "registry_uploads");

            migrationBuilder.DropTable(
                name: "registry_manifests");

            migrationBuilder.DropTable(
                name: "registry_blobs");

            migrationBuilder.DropTable(
                name: "registry_repositories");
        }
    }
}
