using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class UsageCounters : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "UsedApps",
                table: "teams",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedCpuMillicores",
                table: "teams",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedInstances",
                table: "teams",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedMemoryMiB",
                table: "teams",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedApps",
                table: "projects",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedCpuMillicores",
                table: "projects",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedInstances",
                table: "projects",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedMemoryMiB",
                table: "projects",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "UsedApps",
                table: "teams");

            migrationBuilder.DropColumn(
                name: "UsedCpuMillicores",
                table: "teams");

            migrationBuilder.DropColumn(
                name: "UsedInstances",
                table: "teams");

            migrationBuilder.DropColumn(
                name: "UsedMemoryMiB",
                table: "teams");

            migrationBuilder.DropColumn(
                name: "UsedApps",
                table: "projects");

            migrationBuilder.DropColumn(
                name: "UsedCpuMillicores",
                table: "projects");

            migrationBuilder.DropColumn(
                name: "UsedInstances",
                table: "projects");

            migrationBuilder.DropColumn(
                name: "UsedMemoryMiB",
                table: "projects");
        }
    }
}
