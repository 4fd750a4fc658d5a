using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Releases : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "BuildCpuMillicores",
                table: "team_quotas",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "BuildMemoryMiB",
                table: "team_quotas",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "BuildPids",
                table: "team_quotas",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "BuildTimeoutSeconds",
                table: "team_quotas",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<int>(
                name: "Attempts",
                table: "builds",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<bool>(
                name: "CancelRequested",
                table: "builds",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<DateTime>(
                name: "HeartbeatAt",
                table: "builds",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Source",
                table: "builds",
                type: "character varying(2048)",
                maxLength: 2048,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Trigger",
                table: "builds",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                defaultValue: "push");

            migrationBuilder.AddColumn<string>(
                name: "Branch",
                table: "apps",
                type: "character varying(255)",
                maxLength: 255,
                nullable: false,
                defaultValue: "main");

            migrationBuilder.AddColumn<string>(
                name: "DockerfilePath",
                table: "apps",
                type: "character varying(255)",
                maxLength: 255,
                nullable: false,
                defaultValue: "Dockerfile");

            migrationBuilder.AddColumn<string>(
                name: "SourceSetBy",
                table: "apps",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "SourceUrl",
                table: "apps",
                type: "character varying(2048)",
                maxLength: 2048,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "WebhookSecret",
                table: "apps",
                type: "character varying(1024)",
                maxLength: 1024,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "releases",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    AppId = table.Column<Guid>(type: "uuid", nullable: false),
                    Version = table.Column<int>(type: "integer", nullable: false),
                    Image = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    Commit = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    BuildNumber = table.Column<int>(type: "integer", nullable: true),
                    Description = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    CreatedBy = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_releases", x => x.Id);
                    table.ForeignKey(
                        name: "FK_releases_apps_AppId",
                        column: x => x.AppId,
                        principalTable: "apps",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_builds_State",
                table: "builds",
                column: "State");

            migrationBuilder.CreateIndex(
                name: "IX_releases_AppId_Version",
                table: "releases",
                columns: new[] { "AppId", "Version" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "releases");

            migrationBuilder.DropIndex(
                name: "IX_builds_State",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "BuildCpuMillicores",
                table: "team_quotas");

            migrationBuilder.DropColumn(
                name: "BuildMemoryMiB",
                table: "team_quotas");

            migrationBuilder.DropColumn(
                name: "BuildPids",
                table: "team_quotas");

            migrationBuilder.DropColumn(
                name: "BuildTimeoutSeconds",
                table: "team_quotas");

            migrationBuilder.DropColumn(
                name: "Attempts",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "CancelRequested",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "HeartbeatAt",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "Source",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "Trigger",
                table: "builds");

            migrationBuilder.DropColumn(
                name: "Branch",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "DockerfilePath",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "SourceSetBy",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "SourceUrl",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "WebhookSecret",
                table: "apps");
        }
    }
}
