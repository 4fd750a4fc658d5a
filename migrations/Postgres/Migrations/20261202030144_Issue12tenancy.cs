using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Issue12tenancy : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "RequestPath",
                table: "audit_events",
                type: "character varying(400)",
                maxLength: 400,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Host",
                table: "apps",
                type: "character varying(63)",
                maxLength: 63,
                nullable: true);

            // Hand-written (keep when regenerating): existing rows get their request path and host label. Of two
            // older apps that spell one host (the router gave it to the older), the older keeps it, the other none;
            // a label longer than a DNS label is left null too. The same SQL runs on SQLite and PostgreSQL.
            migrationBuilder.Sql("""UPDATE audit_events SET "RequestPath" = "Target";""");
            migrationBuilder.Sql("""
                UPDATE apps SET "Host" = (SELECT lower(apps."Name" || '-' || p."Name" || '-' || t."Name")
                    FROM projects p JOIN teams t ON t."Id" = p."TeamId" WHERE p."Id" = apps."ProjectId")
                WHERE (SELECT length(apps."Name" || '-' || p."Name" || '-' || t."Name")
                    FROM projects p JOIN teams t ON t."Id" = p."TeamId" WHERE p."Id" = apps."ProjectId") <= 63;
                """);
            migrationBuilder.Sql("""
                UPDATE apps SET "Host" = NULL WHERE "Host" IS NOT NULL AND EXISTS (SELECT 1 FROM apps o
                    WHERE o."Host" = apps."Host" AND (o."CreatedAt" < apps."CreatedAt" OR (o."CreatedAt" = apps."CreatedAt" AND o."Id" < apps."Id")));
                """);

            migrationBuilder.CreateIndex(
                name: "IX_apps_Host",
                table: "apps",
                column: "Host",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_apps_Host",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "RequestPath",
                table: "audit_events");

            migrationBuilder.DropColumn(
                name: "Host",
                table: "apps");
        }
    }
}
