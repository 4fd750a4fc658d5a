using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Issue13rollouts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // (After Issue13probes made the column nullable: on SQLite that rebuilds the table at its end.) Before probes, "/" was every app's unasked default and nothing read it: such apps now get the default
            // readiness probe (TCP on the port) instead of an HTTP one on "/".
            migrationBuilder.Sql("UPDATE apps SET \"HealthCheckPath\" = NULL WHERE \"HealthCheckPath\" = '/'");

            migrationBuilder.AddColumn<string>(
                name: "FailureReason",
                table: "releases",
                type: "character varying(1024)",
                maxLength: 1024,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "LastGoodSpec",
                table: "apps",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ProgressDeadlineSeconds",
                table: "apps",
                type: "integer",
                nullable: false,
                defaultValue: 120);

            migrationBuilder.CreateTable(
                name: "app_events",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    AppId = table.Column<Guid>(type: "uuid", nullable: false),
                    At = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Kind = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    Message = table.Column<string>(type: "character varying(1024)", maxLength: 1024, nullable: false),
                    Generation = table.Column<int>(type: "integer", nullable: true),
                    InstanceId = table.Column<Guid>(type: "uuid", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_app_events", x => x.Id);
                    table.ForeignKey(
                        name: "FK_app_events_apps_AppId",
                        column: x => x.AppId,
                        principalTable: "apps",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "rollouts",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    AppId = table.Column<Guid>(type: "uuid", nullable: false),
                    Generation = table.Column<int>(type: "integer", nullable: false),
                    ReleaseVersion = table.Column<int>(type: "integer", nullable: true),
                    State = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Message = table.Column<string>(type: "character varying(1024)", maxLength: 1024, nullable: true),
                    RollbackOf = table.Column<int>(type: "integer", nullable: true),
                    StartedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    DeadlineAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    FinishedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_rollouts", x => x.Id);
                    table.ForeignKey(
                        name: "FK_rollouts_apps_AppId",
                        column: x => x.AppId,
                        principalTable: "apps",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_app_events_AppId_Id",
                table: "app_events",
                columns: new[] { "AppId", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_rollouts_AppId_Generation",
                table: "rollouts",
                columns: new[] { "AppId", "Generation" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_rollouts_State",
                table: "rollouts",
                column: "State");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "app_events");

            migrationBuilder.DropTable(
                name: "rollouts");

            migrationBuilder.DropColumn(
                name: "FailureReason",
                table: "releases");

            migrationBuilder.DropColumn(
                name: "LastGoodSpec",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "ProgressDeadlineSeconds",
                table: "apps");
        }
    }
}
