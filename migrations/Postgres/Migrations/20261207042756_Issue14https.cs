using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Platform.Migrations.Postgres.Migrations
{
    /// <inheritdoc />
    public partial class Issue14https : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "Hsts",
                table: "apps",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<bool>(
                name: "HttpsRedirect",
                table: "apps",
                type: "boolean",
                nullable: false,
                defaultValue: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Hsts",
                table: "apps");

            migrationBuilder.DropColumn(
                name: "HttpsRedirect",
                table: "apps");
        }
    }
}
