using Platform.Api.Access;
using Platform.Api.Identity;
using Platform.Contracts;

namespace Platform.Api.Tests.Access;

public sealed class PolicyTests
{
    [Fact]
    public void Every_permission_has_a_rule()
    {
        foreach (var p in Enum.GetValues<Permission>())
            Assert.True(Policies.Table.ContainsKey(p), p.ToString());
    }

    [Theory]
    [InlineData(Role.Viewer, false)]
    [InlineData(Role.Developer, true)]
    [InlineData(Role.Admin, true)]
    [InlineData(Role.Owner, true)]
    public void Developers_and_above_change_apps(Role role, bool allowed)
    {
        Assert.Equal(allowed, Policies.Allows(Permission.AppWrite, false, role, null));
        Assert.Equal(allowed, Policies.Allows(Permission.AppWrite, false, null, role));
    }

    [Fact]
    public void A_project_role_does_not_reach_team_scoped_permissions()
    {
        Assert.False(Policies.Allows(Permission.ProjectCreate, false, null, Role.Owner));
        Assert.False(Policies.Allows(Permission.TeamMembersRead, false, null, Role.Admin));
        Assert.True(Policies.Allows(Permission.ProjectMembersWrite, false, null, Role.Admin));
    }

    [Fact]
    public void The_higher_of_team_and_project_role_counts_on_a_project()
    {
        Assert.True(Policies.Allows(Permission.AppWrite, false, Role.Viewer, Role.Developer));
        Assert.True(Policies.Allows(Permission.AppWrite, false, Role.Developer, Role.Viewer));
    }

    [Fact]
    public void Team_quotas_are_for_platform_admins_only()
    {
        Assert.False(Policies.Allows(Permission.TeamQuotaWrite, false, Role.Owner, Role.Owner));
        Assert.True(Policies.Allows(Permission.TeamQuotaWrite, true, null, null));
    }

    [Fact]
    public void Platform_admins_hold_every_permission()
    {
        foreach (var p in Enum.GetValues<Permission>())
            Assert.True(Policies.Allows(p, true, null, null));
    }

    [Theory]
    [InlineData(Role.Owner, Role.Owner, true)]
    [InlineData(Role.Admin, Role.Admin, true)]
    [InlineData(Role.Admin, Role.Owner, false)]
    [InlineData(Role.Developer, Role.Viewer, false)]
    [InlineData(Role.Viewer, Role.Viewer, false)]
    public void Members_are_managed_below_owner_by_admins_and_by_owners_entirely(Role granter, Role target, bool allowed) =>
        Assert.Equal(allowed, Roles.CanManage(granter, target));

    [Fact]
    public void Roles_parse_only_their_wire_names()
    {
        Assert.True(Roles.TryParse("developer", out var r));
        Assert.Equal(Role.Developer, r);
        Assert.False(Roles.TryParse("Developer", out _));
        Assert.False(Roles.TryParse("2", out _));
        Assert.All(Enum.GetValues<Role>(), role => Assert.True(Roles.TryParse(role.ToWire(), out _)));
    }
}

public sealed class TokenTests
{
    [Fact]
    public void A_personal_access_token_is_read_from_bearer_and_from_basic()
    {
        var token = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        Assert.Equal(token, Platform.Api.Identity.PatAuthenticationHandler.ReadToken("Bearer " + token));
        var basic = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("anyone:" + token));
        Assert.Equal(token, Platform.Api.Identity.PatAuthenticationHandler.ReadToken("Basic " + basic));
        Assert.Null(Platform.Api.Identity.PatAuthenticationHandler.ReadToken("Bearer eyJhbGciOi.jwt.token"));
        Assert.Null(Platform.Api.Identity.PatAuthenticationHandler.ReadToken("Basic !!notbase64"));
    }

    [Fact]
    public void Tokens_are_random_and_stored_only_as_a_hash()
    {
        var a = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        var b = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        Assert.NotEqual(a, b);
        Assert.StartsWith("plat_", a);
        Assert.True(a.Length >= 45);
        Assert.Equal(64, TokenSecrets.Hash(a).Length);
        Assert.DoesNotContain(a, TokenSecrets.Hash(a));
    }
}
