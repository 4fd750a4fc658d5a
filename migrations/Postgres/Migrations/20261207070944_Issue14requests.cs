using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Issue14requests : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "app_request_minutes",
                columns: table => new
                {
                    AppId = table.Column<Guid>(type: "uuid", nullable: false),
                    Minute = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Replica = table.Column<Guid>(type: "uuid", nullable: false),
                    Status1xx = table.Column<long>(type: "bigint", nullable: false),
                    Status2xx = table.Column<long>(type: "bigint", nullable: false),
                    Status3xx = table.Column<long>(type: "bigint", nullable: false),
                    Status4xx = table.Column<long>(type: "bigint", nullable: false),
                    Status5xx = table.Column<long>(type: "bigint", nullable: false),
                    Latency = table.Column<List<long>>(type: "bigint[]", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_app_request_minutes", x => new { x.AppId, x.Minute, x.Replica });
                });

            migrationBuilder.CreateIndex(
                name: "IX_app_request_minutes_Minute",
                table: "app_request_minutes",
                column: "Minute");

            migrationBuilder.CreateIndex(
                name: "IX_app_request_minutes_Replica_Minute",
                table: "app_request_minutes",
                columns: new[] { "Replica", "Minute" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "app_request_minutes");
        }
    }
}
