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
    private readonly IRenderedComponent<MudDialogProvider> _dialogs;
    private Microsoft.Extensions.Time.Testing.FakeTimeProvider? _clock;

    public PageTests()
    {
        _bunit.JSInterop.Mode = JSRuntimeMode.Loose;
        _bunit.Services.AddMudServices();
        _bunit.Services.AddSingleton<IPlatformApi>(_api);
        _bunit.Services.AddSingleton<TimeProvider>(new TestClock(() => _clock ?? TimeProvider.System));
        _bunit.Services.AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Portal:ApiUrl"] = "http://api.example:5080" }).Build());
        _bunit.Render<MudPopoverProvider>();
        _dialogs = _bunit.Render<MudDialogProvider>();
    }

    /// <summary>The system clock, or the fake one a test sets in <see cref="_clock"/>: MudBlazor takes the TimeProvider
    /// while the providers render, before a test can choose, so the choice is made at each reading.</summary>
    private sealed class TestClock(Func<TimeProvider> current) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => current().GetUtcNow();
        public override TimeZoneInfo LocalTimeZone => current().LocalTimeZone;
        public override long TimestampFrequency => current().TimestampFrequency;
        public override long GetTimestamp() => current().GetTimestamp();
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            current().CreateTimer(callback, state, dueTime, period);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // MudBlazor's services are IAsyncDisposable only: the context goes asynchronously.
    public Task DisposeAsync() => _bunit.DisposeAsync().AsTask();

    private IRenderedComponent<T> Render<T>(Action<ComponentParameterCollectionBuilder<T>>? parameters = null) where T : Microsoft.AspNetCore.Components.IComponent =>
        parameters is null ? _bunit.Render<T>() : _bunit.Render<T>(parameters);

    /// <summary>Clicks the button showing <paramref name="text"/>, again if a render replaced it meanwhile (MudBlazor re-renders as it settles).</summary>
    private static void Click<T>(IRenderedComponent<T> page, string text) where T : Microsoft.AspNetCore.Components.IComponent =>
        page.WaitForAssertion(() => page.FindAll("button").First(b => b.TextContent.Trim() == text).Click());

    /// <summary>Opens the tab labelled <paramref name="text"/> of a MudTabs.</summary>
    private static void OpenTab<T>(IRenderedComponent<T> page, string text) where T : Microsoft.AspNetCore.Components.IComponent =>
        page.WaitForAssertion(() => page.FindAll(".mud-tab").First(t => t.TextContent.Trim() == text).Click());

    private static IEnumerable<string> Buttons(AngleSharp.Dom.IElement element) => element.QuerySelectorAll("button").Select(b => b.TextContent.Trim());

    private IRenderedComponent<AppPage> RenderApp(string name) =>
        Render<AppPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web").Add(x => x.Name, name));

    private static BuildResponse Build(int number, string state, DateTime? finished = null) =>
        new(number, $"{number:x2}23456789abcdef0123456789abcdef01234567", state, state == "Failed" ? "exit status 3" : null, null,
            DateTime.UtcNow, state == "Queued" ? null : DateTime.UtcNow.AddSeconds(-90), finished, "webhook", "dev@example.com");

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
        Assert.Contains("ready 2/2", page.Markup);
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
        _api.Instances.Add(new InstanceResponse("0123456789abcdef0123456789abcdef", "node1", "Ready", 0, null, null, null, "acme/web/shop@sha256:00", 1, DateTime.UtcNow, DateTime.UtcNow, 12, 8 << 20));
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
        _api.Projects["acme"] = [new ProjectSummary("web", "acme", DateTime.UtcNow)];
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
        _api.Users.Add(new UserResponse("u1", "new@example.com", false, DateTime.UtcNow, false));   // a member must be a user
        var page = Render<TeamPage>(p => p.Add(x => x.Team, "acme"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='members']")));
        Assert.Contains("Memory: 512 of 4096 MiB", page.Find("[data-testid='team-quota']").TextContent);
        Assert.Contains("apps.create", page.Find("[data-testid='audit']").TextContent);
        Assert.Contains("app acme/web/shop", page.Find("[data-testid='audit']").TextContent);   // the target by name, not only the path
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

        // The build limits are part of the team's quota: sent with it.
        _api.Refuse = null;
        Input(teams, "Build time limit (s)").Change("600");
        Click(teams, "Save quota");
        teams.WaitForAssertion(() => Assert.Contains(_api.Sent, b => b is TeamQuotaRequest { Build.TimeoutSeconds: 600 }));

        var users = Render<AdminUsers>();
        users.WaitForAssertion(() => Assert.NotNull(users.Find("[data-testid='users']")));
        _api.Refuse = null;
        Input(users, "Email").Change("dev@example.com");
        Input(users, "Password").Change("long-enough-pw");
        Click(users, "Create user");
        users.WaitForAssertion(() => Assert.Contains("dev@example.com", users.Find("[data-testid='users']").TextContent));
    }

    [Fact]
    public void Admins_set_a_teams_domain_suffixes_and_a_refused_entry_is_named_beside_the_field()
    {
        _api.Teams.Add(new TeamSummary("acme", DateTime.UtcNow, null));
        _api.Suffixes["acme"] = ["example.com"];
        var teams = Render<AdminTeams>();
        teams.WaitForAssertion(() => Assert.Equal("example.com", Input(teams, "Custom domain suffixes").GetAttribute("value")));

        _api.Refuse = body => body is DomainSuffixesRequest r && r.Suffixes!.Contains("bad_one")
            ? new ApiProblem((System.Net.HttpStatusCode)422, "The request is not valid.", null, new Dictionary<string, string[]> { ["suffixes[1]"] = ["must be a DNS name."] })
            : null;
        Input(teams, "Custom domain suffixes").Change("example.com, bad_one");
        Click(teams, "Save suffixes");
        teams.WaitForAssertion(() => Assert.Contains("bad_one: must be a DNS name.", teams.Find("[data-testid='domain-suffixes']").TextContent));
        Assert.Equal(["example.com"], _api.Suffixes["acme"]);   // nothing saved

        Input(teams, "Custom domain suffixes").Change("example.com shop.Example.org");
        Click(teams, "Save suffixes");
        teams.WaitForAssertion(() => Assert.Equal(["example.com", "shop.example.org"], _api.Suffixes["acme"]));
        teams.WaitForAssertion(() => Assert.Equal("example.com, shop.example.org", Input(teams, "Custom domain suffixes").GetAttribute("value")));
    }

    [Fact]
    public void Admins_upload_the_apps_domains_certificate_see_refusals_under_the_field_and_remove_it_after_confirmation()
    {
        var page = Render<AdminIngress>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='ingress-certificate-none']")));

        _api.Refuse = body => body is UploadedCertificate { KeyPem: "wrong" } ? FakeApi.Invalid("certificate.keyPem", "does not match the certificate's public key.") : null;
        Input(page, "Certificate chain (PEM, the wildcard first, then its intermediates)").Change("-----BEGIN CERTIFICATE-----");
        Input(page, "Private key (PEM)").Change("wrong");
        Click(page, "Upload");
        page.WaitForAssertion(() => Assert.Contains("does not match the certificate's public key.", page.Markup));
        Assert.Null(_api.IngressCertificate);

        Input(page, "Private key (PEM)").Change("-----BEGIN PRIVATE KEY-----");
        Click(page, "Upload");
        page.WaitForAssertion(() => Assert.Contains("*.apps.localhost", page.Find("[data-testid='ingress-certificate-current']").TextContent));
        Assert.Equal("-----BEGIN PRIVATE KEY-----", Assert.IsType<UploadedCertificate>(_api.Sent.Last()).KeyPem);

        Click(page, "Remove");
        _dialogs.WaitForAssertion(() => Assert.Contains("Apps fall back to HTTP", _dialogs.Markup));
        Assert.NotNull(_api.IngressCertificate);   // nothing before the confirmation
        _dialogs.WaitForAssertion(() => _dialogs.FindAll("button").First(b => b.TextContent.Trim() == "Remove").Click());
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='ingress-certificate-none']")));
        Assert.Null(_api.IngressCertificate);
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
        var page = RenderApp("site");
        OpenTab(page, "Builds");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-builds']")));
        Assert.Contains("git remote add platform http://api.example:5080/git/acme/web/site.git", page.Find("[data-testid='push-commands']").TextContent);

        _api.Builds.Add(new BuildResponse(2, "0123456789abcdef", "Failed", "building at STEP \"RUN exit 3\": exit status 3", null, DateTime.UtcNow, DateTime.UtcNow, DateTime.UtcNow));
        _api.Builds.Add(new BuildResponse(1, "fedcba9876543210", "Succeeded", null, "sha256:00", DateTime.UtcNow, DateTime.UtcNow, DateTime.UtcNow.AddSeconds(2)));
        var built = RenderApp("site");
        OpenTab(built, "Builds");
        built.WaitForAssertion(() => Assert.Contains("exit status 3", built.Find("[data-testid='builds']").TextContent));
        Assert.Contains("0123456789ab", built.Find("[data-testid='build-2']").TextContent);   // the commit, cut to 12
        Assert.DoesNotContain("0123456789abc", built.Find("[data-testid='build-2']").TextContent);
        Click(built, "Log");
        built.WaitForAssertion(() => Assert.Contains("build 2 log", built.Find("[data-testid='build-log']").TextContent));
        Assert.Empty(built.FindAll("[data-testid='following']"));   // a finished build's log is its whole text, not followed
        Assert.Equal(0, _api.FollowsCancelled);
    }

    [Fact]
    public void An_app_running_an_image_has_releases_but_no_builds_tab()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        var page = RenderApp("shop");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='app-url']")));
        Assert.Equal(["Overview", "Releases", "Events", "Domains", "Health"], page.FindAll(".mud-tab").Select(t => t.TextContent.Trim()));
    }

    [Fact]
    public void The_builds_tab_lists_builds_with_Cancel_only_on_queued_and_running_ones_and_no_actions_for_a_viewer()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with { GitUrl = "http://api.example:5080/git/acme/web/site.git", Branch = "main" }];
        _api.Builds.AddRange([Build(4, "Queued"), Build(3, "Running"), Build(2, "Failed", DateTime.UtcNow), Build(1, "Succeeded", DateTime.UtcNow)]);
        var page = RenderApp("site");
        OpenTab(page, "Builds");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='builds-table']")));

        var running = page.Find("[data-testid='build-3']").TextContent;
        Assert.Contains("Running", running);
        Assert.Contains("03234567", running);
        Assert.Contains("webhook", running);
        Assert.Contains("dev@example.com", running);
        Assert.Matches(@"1 min 3\d s…", running);   // still running: the time so far
        Assert.Contains("exit status 3", page.Find("[data-testid='build-2']").TextContent);
        Assert.Contains("Cancel", Buttons(page.Find("[data-testid='build-4']")));
        Assert.Contains("Cancel", Buttons(page.Find("[data-testid='build-3']")));
        Assert.DoesNotContain("Cancel", Buttons(page.Find("[data-testid='build-2']")));
        Assert.DoesNotContain("Cancel", Buttons(page.Find("[data-testid='build-1']")));
        Assert.Contains(page.FindAll("button"), b => b.TextContent.Trim() == "Rebuild");

        page.WaitForAssertion(() => page.Find("[data-testid='build-3']").QuerySelectorAll("button").First(b => b.TextContent.Trim() == "Cancel").Click());
        page.WaitForAssertion(() => Assert.Contains(("cancel", 3), _api.Sent.OfType<(string, int)>()));

        Click(page, "Rebuild");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='build-5']")));
        Assert.Equal(new CreateBuildRequest(null), _api.Sent.OfType<CreateBuildRequest>().Single());

        _api.ProjectRole = "viewer";
        var viewer = RenderApp("site");
        OpenTab(viewer, "Builds");
        viewer.WaitForAssertion(() => Assert.NotNull(viewer.Find("[data-testid='builds-table']")));
        Assert.DoesNotContain(viewer.FindAll("button"), b => b.TextContent.Trim() is "Cancel" or "Rebuild");
        Assert.Contains(viewer.FindAll("button"), b => b.TextContent.Trim() == "Log");
    }

    [Fact]
    public void A_running_builds_time_and_state_move_with_the_clock_without_waiting()
    {
        var clock = _clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var now = clock.GetUtcNow().UtcDateTime;
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with { GitUrl = "http://api.example:5080/git/acme/web/site.git", Branch = "main" }];
        _api.Builds.Add(new BuildResponse(1, new string('a', 40), "Running", null, null, now.AddSeconds(-100), now.AddSeconds(-90), null));
        var page = RenderApp("site");
        OpenTab(page, "Builds");
        page.WaitForAssertion(() => Assert.Contains("1 min 30 s…", page.Find("[data-testid='build-1']").TextContent));

        // The tab reads the list again every 3 s while a build runs: one tick of the fake clock, no sleep.
        _api.Builds[0] = _api.Builds[0] with { State = "Succeeded", FinishedAt = now.AddSeconds(2) };
        clock.Advance(TimeSpan.FromSeconds(3));
        page.WaitForAssertion(() => Assert.Contains("Succeeded", page.Find("[data-testid='build-1']").TextContent));
        Assert.Contains("1 min 32 s", page.Find("[data-testid='build-1']").TextContent);
        Assert.DoesNotContain("…", page.Find("[data-testid='build-1']").TextContent);
    }

    [Fact]
    public void The_build_log_follows_a_running_build_line_by_line_until_another_build_is_selected()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with { GitUrl = "http://api.example:5080/git/acme/web/site.git", Branch = "main" }];
        _api.Builds.AddRange([Build(2, "Running"), Build(1, "Succeeded", DateTime.UtcNow)]);
        var page = RenderApp("site");
        OpenTab(page, "Builds");

        // The newest build runs: its log is followed without asking.
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='following']")));
        Assert.True(_api.BuildLogLines.Writer.TryWrite("STEP 1/2: FROM busybox"));
        Assert.True(_api.BuildLogLines.Writer.TryWrite("STEP 2/2: RUN make"));
        page.WaitForAssertion(() => Assert.Equal("STEP 1/2: FROM busybox\nSTEP 2/2: RUN make\n", page.Find("[data-testid='build-log']").TextContent));
        Assert.True(_api.BuildLogLines.Writer.TryWrite("compiling…"));
        page.WaitForAssertion(() => Assert.EndsWith("RUN make\ncompiling…\n", page.Find("[data-testid='build-log']").TextContent));
        Assert.Contains("Build #2 log", page.Find("[data-testid='build-log-panel']").TextContent);

        // Another build: the live log stops, the finished build's whole log shows.
        page.WaitForAssertion(() => page.Find("[data-testid='build-1']").QuerySelector("button")!.Click());
        page.WaitForAssertion(() => Assert.Contains("build 1 log", page.Find("[data-testid='build-log']").TextContent));
        Assert.DoesNotContain("compiling", page.Find("[data-testid='build-log']").TextContent);
        Assert.Empty(page.FindAll("[data-testid='following']"));
        Assert.Equal(1, _api.FollowsCancelled);
    }

    [Fact]
    public void The_live_log_ends_with_the_build_and_stops_when_the_page_goes_away()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with { GitUrl = "http://api.example:5080/git/acme/web/site.git", Branch = "main" }];
        _api.Builds.Add(Build(1, "Running"));
        var page = RenderApp("site");
        OpenTab(page, "Builds");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='following']")));

        _api.Builds[0] = Build(1, "Succeeded", DateTime.UtcNow);
        _api.BuildLogLines.Writer.TryWrite("done");
        _api.BuildLogLines.Writer.Complete();   // the end event
        page.WaitForAssertion(() => Assert.Empty(page.FindAll("[data-testid='following']")));
        Assert.Contains("Succeeded", page.Find("[data-testid='build-1']").TextContent);   // the list is read again for the final state
        Assert.Equal("done\n", page.Find("[data-testid='build-log']").TextContent);

        _api.Builds[0] = Build(2, "Running");
        _api.BuildLogLines = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var other = RenderApp("site");
        OpenTab(other, "Builds");
        other.WaitForAssertion(() => Assert.NotNull(other.Find("[data-testid='following']")));
        OpenTab(other, "Overview");   // the Builds tab is disposed: its follower goes
        other.WaitForAssertion(() => Assert.Equal(1, _api.FollowsCancelled));
    }

    [Fact]
    public void An_app_built_from_a_hosted_repository_explains_its_webhook()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "site", 1, 1) with
        {
            Image = null, SourceUrl = "https://github.com/acme/site.git", Branch = "release", DockerfilePath = "docker/web.Dockerfile",
            WebhookUrl = "http://api.example:5080/hooks/acme/web/site",
        }];
        var page = RenderApp("site");
        OpenTab(page, "Builds");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='webhook']")));
        Assert.Equal("https://github.com/acme/site.git", page.Find("[data-testid='source-url']").TextContent);
        Assert.Equal("http://api.example:5080/hooks/acme/web/site", page.Find("[data-testid='webhook-url']").TextContent);
        var help = page.Find("[data-testid='source']").TextContent;
        Assert.Contains("application/json", help);
        Assert.Contains("Secret token", help);
        Assert.Contains("docker/web.Dockerfile", help);
        Assert.Contains("release", help);
        Assert.Empty(page.FindAll("[data-testid='webhook-secret']"));   // shown once, at creation
        Assert.Empty(page.FindAll("[data-testid='push-commands']"));
    }

    [Fact]
    public void The_releases_tab_offers_Roll_back_on_earlier_releases_only_and_rolls_back_after_confirmation()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        var digest = "acme/web/shop@sha256:" + new string('e', 64);
        _api.Releases.AddRange([
            new ReleaseResponse(3, digest, "0123456789abcdef0123456789abcdef01234567", 7, "Build #7 of 0123456", "dev@example.com", DateTime.UtcNow, true),
            new ReleaseResponse(2, "library/hello:2", null, null, "Deployed image library/hello:2", "owner@example.com", DateTime.UtcNow.AddHours(-1), false),
            new ReleaseResponse(1, "library/hello:1", null, null, "Deployed image library/hello:1", null, DateTime.UtcNow.AddHours(-2), false)]);
        var page = RenderApp("shop");
        OpenTab(page, "Releases");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='releases-table']")));

        var current = page.Find("[data-testid='release-3']");
        Assert.NotNull(current.QuerySelector("[data-testid='current']"));
        Assert.Contains("acme/web/shop@sha256:eeeeeeeeeeee…", current.TextContent);
        Assert.DoesNotContain(new string('e', 13), current.TextContent);
        Assert.Contains("build #7", current.TextContent);
        Assert.DoesNotContain("Roll back", Buttons(current));
        Assert.Null(page.Find("[data-testid='release-2']").QuerySelector("[data-testid='current']"));
        Assert.Contains("Roll back", Buttons(page.Find("[data-testid='release-2']")));
        Assert.Contains("Roll back", Buttons(page.Find("[data-testid='release-1']")));

        page.WaitForAssertion(() => page.Find("[data-testid='release-1']").QuerySelector("button")!.Click());
        _dialogs.WaitForAssertion(() => Assert.Contains("Roll shop back to v1", _dialogs.Markup));
        Assert.Empty(_api.Sent);   // nothing before the confirmation
        _dialogs.WaitForAssertion(() => _dialogs.FindAll("button").First(b => b.TextContent.Trim() == "Roll back").Click());
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='release-4']").QuerySelector("[data-testid='current']")));
        Assert.Equal(("rollback", 1), Assert.IsType<(string, int)>(_api.Sent.Single()));
        Assert.Contains("Rollback to v1", page.Find("[data-testid='release-4']").TextContent);
        Assert.Contains("Roll back", Buttons(page.Find("[data-testid='release-3']")));   // no longer current
    }

    [Fact]
    public void A_refused_rollback_says_why_and_a_viewer_cannot_roll_back()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        _api.Releases.AddRange([
            new ReleaseResponse(2, "library/hello:2", null, null, "Deployed image library/hello:2", null, DateTime.UtcNow, true),
            new ReleaseResponse(1, "library/hello:1", null, null, "Deployed image library/hello:1", null, DateTime.UtcNow.AddHours(-1), false)]);
        _api.Refuse = _ => FakeApi.Invalid("instances", "quota exceeded: asked 3, 1 left");
        var page = RenderApp("shop");
        OpenTab(page, "Releases");
        page.WaitForAssertion(() => page.Find("[data-testid='release-1']").QuerySelector("button")!.Click());
        _dialogs.WaitForAssertion(() => _dialogs.FindAll("button").First(b => b.TextContent.Trim() == "Roll back").Click());
        page.WaitForAssertion(() => Assert.Contains("quota exceeded: asked 3, 1 left", _bunit.Services.GetRequiredService<ISnackbar>().ShownSnackbars.Single().Message));

        _api.ProjectRole = "viewer";
        var viewer = RenderApp("shop");
        OpenTab(viewer, "Releases");
        viewer.WaitForAssertion(() => Assert.NotNull(viewer.Find("[data-testid='releases-table']")));
        Assert.DoesNotContain(viewer.FindAll("button"), b => b.TextContent.Trim() == "Roll back");
    }

    [Fact]
    public void Creating_an_app_from_a_hosted_repository_shows_its_webhook_secret_once()
    {
        _api.Projects["acme"] = [new ProjectSummary("web", "acme", DateTime.UtcNow)];
        _api.Refuse = null;
        var page = Render<ProjectPage>(p => p.Add(x => x.Team, "acme").Add(x => x.Project, "web"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-apps']")));
        page.Find("input[type='checkbox']").Change(true);   // Build from git
        page.WaitForAssertion(() => Input(page, "Source URL (GitHub/GitLab)").Change("https://github.com/acme/site.git"));
        Input(page, "Name").Change("site");
        Input(page, "Branch").Change("release");
        Input(page, "Dockerfile path").Change("docker/web.Dockerfile");
        Click(page, "Create app");

        page.WaitForAssertion(() => Assert.Contains("whsec_ONCE", page.Find("[data-testid='webhook-secret']").TextContent));
        var sent = Assert.IsType<CreateAppRequest>(_api.Sent.Single());
        Assert.Equal(("site", null, "https://github.com/acme/site.git", "release", "docker/web.Dockerfile"), (sent.Name, sent.Image, sent.SourceUrl, sent.Branch, sent.DockerfilePath));
        Assert.Contains("http://api.example:5080/hooks/acme/web/site", page.Find("[data-testid='webhook-url']").TextContent);
        Assert.NotNull(page.Find("a[href='/teams/acme/projects/web/apps/site']"));
    }

    [Fact]
    public void The_app_page_shows_the_rollout_in_progress_with_a_progress_bar_and_cancelling_rolls_it_back()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 2, "rolling out 1/2")];
        _api.Rollout = new RolloutResponse(2, "Progressing", "release v2 (acme/web/shop:2)", 2, null, DateTime.UtcNow.AddSeconds(-20),
            DateTime.UtcNow.AddSeconds(100), null, new RolloutSide(1, 2), new RolloutSide(2, 2));
        _api.Events.Add(new AppEventResponse(7, DateTime.UtcNow, "ProbeFailed", "instance 89abcdef (generation 2) is not ready: readiness: connection refused on :8080 (3 of 3)", 2, null));
        _api.Events.Add(new AppEventResponse(6, DateTime.UtcNow, "RolloutStarted", "generation 2 rolling out: release v2", 2, null));
        var page = RenderApp("shop");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='rollout']")));
        Assert.Equal("Progressing", page.Find("[data-testid='rollout-state']").TextContent.Trim());
        Assert.Contains("new 1/2 ready", page.Find("[data-testid='rollout-counts']").TextContent);
        Assert.Contains("old 2/2 still serving", page.Find("[data-testid='rollout-counts']").TextContent);
        Assert.Equal("50", page.Find("[data-testid='rollout-progress']").GetAttribute("aria-valuenow"));
        Assert.Contains("rolling out 1/2", page.Markup);

        page.Find("[data-testid='cancel-rollout']").Click();
        page.WaitForAssertion(() => Assert.Contains(("cancel rollout", "shop"), _api.Sent.OfType<(string, string)>()));
        page.WaitForAssertion(() => Assert.Equal("Cancelled", page.Find("[data-testid='rollout-state']").TextContent.Trim()));
        Assert.Empty(page.FindAll("[data-testid='cancel-rollout']"));   // nothing left to cancel

        OpenTab(page, "Events");
        page.WaitForAssertion(() => Assert.Contains("connection refused on :8080 (3 of 3)", page.Find("[data-testid='events-table']").TextContent));
    }

    [Fact]
    public void The_rollout_and_the_instance_list_move_on_the_open_page_without_a_refresh()
    {
        var clock = _clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var now = clock.GetUtcNow().UtcDateTime;
        InstanceResponse Instance(string id, string state, int generation) =>
            new(id, "node-1", state, 0, null, null, state == "Starting" ? "readiness: connection refused on :8080 (1 of 3)" : null, "acme/web/shop@sha256:aa", generation, now, now, 0, 0);
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1, "rolling out 0/1")];
        _api.Instances.AddRange([Instance("00000000000000000000000000old001", "Ready", 1), Instance("00000000000000000000000000new002", "Starting", 2)]);
        _api.Rollout = new RolloutResponse(2, "Progressing", "release v2", 2, null, now, now.AddSeconds(120), null, new RolloutSide(0, 1), new RolloutSide(1, 1));
        var page = RenderApp("shop");
        page.WaitForAssertion(() => Assert.Equal("0", page.Find("[data-testid='rollout-progress']").GetAttribute("aria-valuenow")));
        Assert.Contains("Starting", page.Find("[data-testid='instances']").TextContent);
        Assert.Contains("old001", page.Find("[data-testid='instances']").TextContent);

        // The new instance passes its probe and the old one goes: one tick of the page's 2 s refresh shows it, no click.
        _api.Instances.Clear();
        _api.Instances.Add(Instance("00000000000000000000000000new002", "Ready", 2));
        _api.Rollout = _api.Rollout with { State = "Succeeded", New = new RolloutSide(1, 1), Old = new RolloutSide(0, 0), FinishedAt = now.AddSeconds(4) };
        clock.Advance(TimeSpan.FromSeconds(2));
        page.WaitForAssertion(() => Assert.Equal("Succeeded", page.Find("[data-testid='rollout-state']").TextContent.Trim()));
        Assert.Equal("100", page.Find("[data-testid='rollout-progress']").GetAttribute("aria-valuenow"));
        Assert.DoesNotContain("old001", page.Find("[data-testid='instances']").TextContent);
        Assert.Contains("Ready", page.Find("[data-testid='instances']").TextContent);
    }

    [Fact]
    public void The_app_page_charts_the_apps_requests_by_status_and_latency_follows_new_traffic_and_switches_window()
    {
        var clock = _clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var start = clock.GetUtcNow().UtcDateTime.AddMinutes(-59);
        RequestSeriesResponse Hour(long ok, long failed) => new("1h", 60,
            Enumerable.Range(0, 60).Select(i => new RequestPoint(start.AddMinutes(i), 0, i == 59 ? ok : 0, 0, 0, i == 59 ? failed : 0, i == 59 ? 3.5 : null, i == 59 ? 240 : null)).ToList(),
            ok + failed, failed, 3.5, 240);
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        var page = RenderApp("shop");
        // No traffic yet: said in words, no empty chart.
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-requests']")));

        // Traffic arrives: the next refresh (every 10 s) draws it, with the totals beside the title.
        _api.Requests["1h"] = Hour(990, 10);
        clock.Advance(TimeSpan.FromSeconds(10));
        page.WaitForAssertion(() => Assert.Contains("1,000 in the last 1h", page.Find("[data-testid='requests-summary']").TextContent));
        var summary = page.Find("[data-testid='requests-summary']").TextContent;
        Assert.Contains("1 % 5xx", summary);
        Assert.Contains("p99 240 ms", summary);
        var panel = page.Find("[data-testid='requests']");
        // Two charts: the stacked bars (1xx … 5xx) and the latency lines (p50, p99), each with its legend.
        var legends = panel.QuerySelectorAll(".mud-chart-legend").Select(l => l.QuerySelectorAll(".mud-chart-legend-item").Select(i => i.TextContent.Trim()).ToList()).ToList();
        Assert.Equal([["1xx", "2xx", "3xx", "4xx", "5xx"], ["p50", "p99"]], legends);

        // Another window is asked for when chosen.
        _api.Requests["24h"] = new RequestSeriesResponse("24h", 900, [], 0, 0, null, null);
        page.FindAll("[data-testid='requests'] button").First(b => b.TextContent.Trim() == "24h").Click();
        page.WaitForAssertion(() => Assert.Contains("24h", _api.RequestWindowsAsked));
        page.WaitForAssertion(() => Assert.Contains("in the last 24h", page.Find("[data-testid='no-requests']").TextContent));
    }

    [Fact]
    public void The_domains_tab_claims_a_host_follows_its_certificate_state_puts_a_refusal_next_to_the_field_and_removes_it()
    {
        var clock = _clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        _api.Refuse = body => body is (string host, PutDomainRequest) && host == "taken.example.com" ? FakeApi.Conflict("host", "taken.example.com is held by another app on this platform.") : null;
        var page = RenderApp("shop");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-instances']")));
        OpenTab(page, "Domains");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-domains']")));

        // A host another app holds: the Api's words under the field, nothing added.
        Input(page, "Host name").Change("taken.example.com");
        page.Find("[data-testid='add-domain']").Click();
        page.WaitForAssertion(() => Assert.Contains("held by another app", page.Find("[data-testid='domains']").TextContent));
        Assert.Empty(_api.Domains);

        Input(page, "Host name").Change("www.example.com");
        page.Find("[data-testid='add-domain']").Click();
        page.WaitForAssertion(() => Assert.Equal("Pending", page.Find("[data-testid='domain-www.example.com'] [data-testid='domain-state']").TextContent.Trim()));
        Assert.Contains("www.example.com. CNAME shop-web-acme.apps.localhost.", page.Find("[data-testid='domain-www.example.com']").TextContent);

        // The issuer moves it on; the open tab follows on its own (one tick of its 3 s refresh, no click).
        _api.Domains[0] = _api.Domains[0] with { State = "Ready", Message = "certificate issued by Pebble Intermediate CA", NotAfter = new DateTime(2026, 4, 1), RenewAt = new DateTime(2026, 3, 2) };
        clock.Advance(TimeSpan.FromSeconds(3));
        page.WaitForAssertion(() => Assert.Equal("Ready", page.Find("[data-testid='domain-www.example.com'] [data-testid='domain-state']").TextContent.Trim()));
        Assert.Contains("2026-04-01 (renews 2026-03-02)", page.Find("[data-testid='domain-www.example.com']").TextContent);

        page.Find("[data-testid='remove-www.example.com']").Click();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-domains']")));
        Assert.Contains(("delete domain", "www.example.com"), _api.Sent.OfType<(string, string)>());
    }

    [Fact]
    public void The_health_tab_shows_the_probes_in_effect_and_puts_the_Apis_refusal_next_to_the_field()
    {
        _api.Apps["acme/web"] = [FakeApi.App("acme", "web", "shop", 1, 1)];
        _api.Refuse = body => body is UpdateAppRequest { Readiness.IntervalSeconds: > 300 } ? FakeApi.Invalid("readiness.intervalSeconds", "must be between 1 and 300.") : null;
        var page = RenderApp("shop");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='no-instances']")));
        Assert.Contains("readiness <code>TCP every 2 s</code>", page.Markup);
        OpenTab(page, "Health");
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid='health']")));
        Input(page, "Every (s)").Change("900");   // not Immediate: the field binds when it changes
        page.Find("[data-testid='save-health']").Click();
        page.WaitForAssertion(() => Assert.Contains("must be between 1 and 300.", page.Markup));
        var sent = Assert.IsType<UpdateAppRequest>(_api.Sent.Single());
        Assert.Equal(("tcp", 900, "none"), (sent.Readiness!.Type, sent.Readiness.IntervalSeconds, sent.Liveness!.Type));
        Assert.Equal((10, 120), (sent.StopGraceSeconds, sent.ProgressDeadlineSeconds));
    }
}
