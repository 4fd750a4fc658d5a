using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Sqlite.Migrations
{
    /// <inheritdoc />
    public partial class NodeHeartbeats : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Address",
                table: "nodes",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "AgentVersion",
                table: "nodes",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "AllocatableCpuMillicores",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "AllocatableMemoryMiB",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "CapacityCpuMillicores",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "CapacityMemoryMiB",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<int>(
                name: "RunningInstances",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<long>(
                name: "UsedCpuMillicores",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<long>(
                name: "UsedMemoryMiB",
                table: "nodes",
                type: "INTEGER",
                nullable: false,
                defaultValue: 0L);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Address",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "AgentVersion",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "AllocatableCpuMillicores",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "AllocatableMemoryMiB",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "CapacityCpuMillicores",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "CapacityMemoryMiB",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "RunningInstances",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "UsedCpuMillicores",
                table: "nodes");

            migrationBuilder.DropColumn(
                name: "UsedMemoryMiB",
                table: "nodes");
        }
    }
}
