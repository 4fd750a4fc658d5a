using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Issue12nodes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ControlKey",
                table: "nodes");

            migrationBuilder.AddColumn<string>(
                name: "ProtectedControlKey",
                table: "nodes",
                type: "character varying(1024)",
                maxLength: 1024,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ProtectedControlKey",
                table: "nodes");

            migrationBuilder.AddColumn<string>(
                name: "ControlKey",
                table: "nodes",
                type: "character varying(128)",
                maxLength: 128,
                nullable: true);
        }
    }
}
