using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Platform.Contracts;
using Platform.Portal.Api;
using Platform.Portal.Components.Pages;

namespace Platform.Portal.Tests;

/// <summary>Each page's states — loading, empty, error, forbidden, populated — rendered with bUnit against a fake Api.</summary>
public sealed class PageTests : IAsyncLifetime
{
    private readonly FakeApi _api = new();
    private readonly BunitContext _bunit = new();

    public PageTests()
    {
        _bunit.JSInterop.Mode = JSRuntimeMode.Loose;
        _bunit.Services.AddMudServices();
        _bunit.Services.AddSingleton<IPlatformApi>(_api);
        _bunit.Services.AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Portal:ApiUrl"] = "http://api.example:5080" }).Build());
        _bunit.Render<MudPopoverProvider>();
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // MudBlazor's services are IAsyncDisposable only: the context goes asynchronously.
    public Task DisposeAsync() => _bunit.DisposeAsync().AsTask();

    private IRenderedComponent<T> Render<T>(Action<ComponentParameterCollectionBuilder<T>>? parameters = null) where T : Microsoft.AspNetCore.Components.IComponent =>
        parameters is null ? _bunit.Render<T>() : _bunit.Render<T>(parameters);

    /// <summary>Clicks the button showing <paramref name="text"/>, again if a render replaced it meanwhile (MudBlazor re-renders as it settles).</summary>
    private static void Click<T>(IRenderedComponent<T> page, string text) where T : Microsoft.AspNetCore.Components.IComponent =>
        page.WaitForAssertion(() => page.FindAll("button").First(b => b.TextContent.Trim() == text).Click());

    /// <summary>The input a MudBlazor field renders for <paramref name="label"/> (through the label's for attribute).</summary>
    private static AngleSharp.Dom.IElement Input<T>(IRenderedComponent<T> page, string label) where T : Microsoft.AspNetCore.Components.IComponent
    {
        var id = page.FindAll("label").First(l => l.TextContent.Trim() == label).GetAttribute("for");
        return page.Find($"[id='{id}']");
    }

    [Fact]
    public void The_dashboard_shows_a_progress_bar_while_loading_then_the_teams_projects_and_apps_with_their_state()
    {
        _api.Gate = new TaskCompletionSource();
        _api.Teams.Add(new TeamSummary("acme", DateTime.UtcNow, "developer"));
        _api.Projects["acme"] = [new ProjectSummary("web", "acme", DateTime.UtcNow), new ProjectSummary("empty", "acme", DateTime.UtcNow)];
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 2, 2), FakeApi.App("acme", "web", "api", 0, 1, "1 instance(s) wait for a Ready node")];

        var page = Render<Dashboard>();
        Assert.NotEmpty(page.FindAll("[aria-label='Loading']"));

        _api.Gate.SetResult();
        page.WaitForAssertion(() => Assert.Contains("acme", page.Markup));
        Assert.Contains("running 2/2", page.Markup);
        Assert.Contains("waiting 0/1", page.Markup);
        Assert.Contains("create one from an image", page.Markup);   // the empty project says what to do next
        Assert.NotNull(page.Find("a[href='/teams/acme/projects/web/apps/shop']"));
    }

    [Fact]
    public void The_dashboard_says_what_to_do_when_there_is_no_team()
    {
        var page = Render<Dashboard>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='empty']")));
    }

    [Fact]
    public void The_dashboard_reports_an_error_and_a_refusal()
    {
        _api.Problem = FakeApi.Broken();
        var broken = Render<Dashboard>();
        broken.WaitForAssertion(() => Assert.NotNull(broken.Find("[data-testid='error']")));

        _api.Problem = FakeApi.Forbidden();
        var refused = Render<Dashboard>();
        refused.WaitForAssertion(() => Assert.NotNull(refused.Find("[data-testid='forbidden']")));
    }

    [Fact]
    public void The_app_page_shows_status_url_instances_with_exit_reasons_and_logs()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 2)];
        _api.Instances.Add(new InstanceResponse("0123456789abcdef0123456789abcdef", "node1", "Running", 0, null, null, null, "acme/web/shop@sha256:00", 1, DateTime.UtcNow, DateTime.UtcNow, 12, 8 << 20));
        _api.Instances.Add(new InstanceResponse("fedcba9876543210fedcba9876543210", "node2", "Restarting", 3, 137, "OOMKilled", null, "acme/web/shop@sha256:00", 1, DateTime.UtcNow, null, 0, 0));

        var page = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "shop"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='instances']")));
        Assert.Equal("http://shop-web-acme.apps.localhost:8080", page.Find("[data-testid='app-url']").TextContent.Trim());
        Assert.Contains("starting 1/2", page.Markup);
        Assert.Contains("137 (OOMKilled)", page.Markup);
        Assert.Contains("node2", page.Markup);
        Assert.Contains("serving on port 8080", page.Find("[data-testid='logs']").TextContent);
    }

    [Fact]
    public void The_app_page_says_when_the_app_is_gone_or_hidden()
    {
        var gone = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "gone"));
        gone.WaitForAssertion(() => Assert.NotNull(gone.Find("[data-testid='not-found']")));

        _api.Problem = FakeApi.Forbidden();
        var hidden = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "shop"));
        hidden.WaitForAssertion(() => Assert.NotNull(hidden.Find("[data-testid='forbidden']")));
    }

    [Fact]
    public void Scaling_shows_the_Apis_refusal_next_to_the_instances_field()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        _api.Refuse = body => body is UpdateAppRequest { Instances: > 4 } ? FakeApi.Invalid("instances", "quota exceeded: asked 9, 3 left") : null;
        var page = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "shop"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-instances']")));

        Input(page, "Instances").Input("9");   // the field binds as one types
        Click(page, "Scale");
        page.WaitForAssertion(() => Assert.Contains("quota exceeded: asked 9, 3 left", page.Markup));
        Assert.Equal(9, Assert.IsType<UpdateAppRequest>(_api.Sent.Single()).Instances);
    }

    [Fact]
    public void The_project_page_lists_apps_warns_about_quota_before_submitting_and_puts_problems_next_to_fields()
    {
        var page = Render<ProjectPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-apps']")));
        Assert.Contains("256 / 1024", page.Find("[data-testid='quota']").TextContent);

        // 8 × 128 MiB does not fit the 768 MiB left: said before submitting.
        Input(page, "Instances").Change("8");
        page.WaitForAssertion(() => Assert.Contains("has 768 MiB left", page.Find("[data-testid='quota-warning']").TextContent));

        _api.Refuse = _ => FakeApi.Invalid("image", "'other/p/x' belongs to another team");
        Click(page, "Create app");
        page.WaitForAssertion(() => Assert.Contains("belongs to another team", page.Markup));
        Assert.IsType<CreateAppRequest>(_api.Sent.Single());
    }

    [Fact]
    public void Tokens_are_listed_and_a_new_one_is_shown_once()
    {
        var page = Render<Tokens>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='empty']")));
        Input(page, "Name").Change("ci");
        Click(page, "Create token");
        page.WaitForAssertion(() => Assert.Contains("plat_abcdefSECRET", page.Find("[data-testid='new-token']").TextContent));
        Assert.Contains("ci", page.Find("[data-testid='tokens']").TextContent);
    }

    [Fact]
    public void Nodes_show_usage_for_admins_and_a_refusal_for_others()
    {
        _api.Nodes.Add(new NodeResponse("node1", DateTime.UtcNow, DateTime.UtcNow, "Ready", "10.0.0.5", "1.0", new(4096, 2000), new(3840, 1900), new(512, 250), 3));
        var page = Render<Nodes>();
        page.WaitForAssertion(() => Assert.Contains("node1", page.Find("[data-testid='nodes']").TextContent));
        Assert.Contains("512 / 3840 MiB", page.Markup);

        _api.Problem = FakeApi.Forbidden();
        var refused = Render<Nodes>();
        refused.WaitForAssertion(() => Assert.NotNull(refused.Find("[data-testid='forbidden']")));
    }

    [Fact]
    public void The_team_page_shows_quota_bars_members_and_audit_and_hides_admin_actions_from_a_viewer()
    {
        _api.Projects["acme"] = [new ProjectSummary("web", "acme", DateTime.UtcNow)];
        _api.Members.Add(new MemberResponse("dev@example.com", "developer", null));
        var page = Render<TeamPage>(p => p.Add(x => x.Team, "acme"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='members']")));
        Assert.Contains("Memory: 512 of 4096 MiB", page.Find("[data-testid='team-quota']").TextContent);
        Assert.Contains("apps.create", page.Find("[data-testid='audit']").TextContent);
        Assert.Contains(page.FindAll("button"), b => b.TextContent.Trim() == "Create project");

        Input(page, "Email of an existing user").Change("new@example.com");
        Click(page, "Add or change");
        page.WaitForAssertion(() => Assert.Contains("new@example.com", page.Find("[data-testid='members']").TextContent));

        _api.MyRole = "viewer";
        var viewer = Render<TeamPage>(p => p.Add(x => x.Team, "acme"));
        viewer.WaitForAssertion(() => Assert.NotNull(viewer.Find("[data-testid='members']")));
        Assert.DoesNotContain(viewer.FindAll("button"), b => b.TextContent.Trim() is "Create project" or "Add or change" or "Remove");
        Assert.Empty(viewer.FindAll("[data-testid='audit']"));
    }

    [Fact]
    public void Admins_create_teams_and_users_and_see_the_Apis_problems_next_to_the_fields()
    {
        _api.Teams.Add(new TeamSummary("acme", DateTime.UtcNow, null));
        var teams = Render<AdminTeams>();
        teams.WaitForAssertion(() => Assert.Contains("acme", teams.Markup));
        _api.Refuse = body => body is CreateTeamRequest ? FakeApi.Invalid("name", "must be a DNS label") : null;
        Input(teams, "Team name").Change("Bad Name");
        Click(teams, "Create team");
        teams.WaitForAssertion(() => Assert.Contains("must be a DNS label", teams.Markup));

        var users = Render<AdminUsers>();
        users.WaitForAssertion(() => Assert.NotNull(users.Find("[data-testid='users']")));
        _api.Refuse = null;
        Input(users, "Email").Change("dev@example.com");
        Input(users, "Password").Change("long-enough-pw");
        Click(users, "Create user");
        users.WaitForAssertion(() => Assert.Contains("dev@example.com", users.Find("[data-testid='users']").TextContent));
    }

    [Fact]
    public void The_images_page_lists_repositories_and_tags_with_push_instructions()
    {
        var page = Render<Images>(p => p.Add(x => x.Team, "acme"));
        page.WaitForAssertion(() => Assert.Contains("acme/web/shop", page.Find("[data-testid='images']").TextContent));
        Assert.Contains("docker login", page.Markup);

        _api.Problem = FakeApi.Forbidden();
        var refused = Render<Images>(p => p.Add(x => x.Team, "other"));
        refused.WaitForAssertion(() => Assert.NotNull(refused.Find("[data-testid='forbidden']")));
    }

    [Fact]
    public void A_viewer_sees_apps_but_no_create_scale_or_delete()
    {
        _api.ProjectRole = "viewer";
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        var project = Render<ProjectPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web"));
        project.WaitForAssertion(() => Assert.NotNull(project.Find("[data-testid='read-only']")));
        Assert.DoesNotContain(project.FindAll("button"), b => b.TextContent.Trim() == "Create app");

        var app = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "shop"));
        app.WaitForAssertion(() => Assert.NotNull(app.Find("[data-testid='app-url']")));
        Assert.DoesNotContain(app.FindAll("button"), b => b.TextContent.Trim() is "Scale" or "Delete app");
    }

    [Fact]
    public void An_app_built_from_git_shows_its_push_commands_builds_and_their_logs()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with { GitUrl = "http://api.example:5080/git/acme/web/site.git" }];
        var page = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "site"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-builds']")));
        Assert.Contains("git remote add platform http://api.example:5080/git/acme/web/site.git", page.Find("[data-testid='push-commands']").TextContent);

        _api.Builds.Add(new BuildResponse(2, "0123456789abcdef", "Failed", "building at STEP \"RUN exit 3\": exit status 3", null, DateTime.UtcNow, DateTime.UtcNow, DateTime.UtcNow));
        _api.Builds.Add(new BuildResponse(1, "fedcba9876543210", "Succeeded", null, "sha256:00", DateTime.UtcNow, DateTime.UtcNow, DateTime.UtcNow.AddSeconds(2)));
        var built = Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, "site"));
        built.WaitForAssertion(() => Assert.Contains("exit status 3", built.Find("[data-testid='builds']").TextContent));
        Click(built, "Log");
        built.WaitForAssertion(() => Assert.Contains("build 2 log", built.Find("[data-testid='build-log']").TextContent));
    }
}
