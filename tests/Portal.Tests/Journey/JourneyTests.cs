using System.Diagnostics;
using System.Net;
using Microsoft.Playwright;
using Platform.Api.Tests.Builds;
using Platform.Api.Tests.Infrastructure;
using Platform.Api.Tests.Nodes;
using Platform.Api.Tests.Registry;

namespace Platform.Portal.Tests.Journey;

/// <summary>
/// The whole stack driven through the Portal in Debian's Chromium (Playwright): the Api with its
/// registry and router, the Portal process, one real node agent running containers. A platform admin
/// signs in, creates a team with its quota and a user; that user signs in, creates a project and an
/// app from library/hello, sees it Running, opens its URL through the router, scales it to 2, sees two
/// instances and deletes it. Screenshots of a failure are kept in .test-run/screenshots. No xunit
/// collection keeps it apart from the Api tests' runtime collection (another test assembly):
/// scripts/test.sh runs the projects one after another, and its agent has a bridge prefix, subnet base
/// and port range of its own should they overlap (a `dotnet test` of the whole solution in parallel).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class JourneyTests
{
    private static Process StartPortal(Uri api, string portalUrl, string dataDir) =>
        Built.Start("dotnet", [Built.Dll("Portal", "Platform.Portal"), "--urls", portalUrl, "--contentRoot", Path.Combine(RegistryFixture.RepoRoot, "src", "Portal")],
            new Dictionary<string, string> { ["Portal__ApiUrl"] = api.ToString().TrimEnd('/'), ["Portal__DataDir"] = dataDir },
            Path.Combine(dataDir, "portal.log"));

    /// <summary>Opens a Portal page and waits until it is interactive (its Blazor circuit connected).</summary>
    private static async Task OpenAsync(IPage page, string url)
    {
        await page.GotoAsync(url);
        await Live(page);
    }

    private static Task Live(IPage page) =>
        page.GetByTestId("interactive").WaitForAsync(new() { State = WaitForSelectorState.Attached });

    private static async Task SignInAsync(IPage page, string portal, string email, string password)
    {
        await page.GotoAsync(portal + "/signin");   // the Api's sign-in page, not a Portal page
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", password);
        await page.ClickAsync("button[type=submit]");
        await page.WaitForURLAsync(portal + "/", new() { Timeout = 30_000 });
        await Live(page);
        await Assertions.Expect(page.GetByText(email)).ToBeVisibleAsync();
    }

    private static async Task SignOutAsync(IPage page)
    {
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Sign in" }).First).ToBeVisibleAsync();
    }

    /// <summary>A MudBlazor text field by its label (the label's for= names the input).</summary>
    private static ILocator Field(IPage page, string label) => page.GetByLabel(label, new() { Exact = true });

    [Fact]
    public async Task An_admin_and_a_developer_deploy_scale_open_delete_and_build_from_git_through_the_Portal()
    {
        Assert.True(File.Exists("/usr/bin/chromium"), "Debian's chromium is installed by scripts/test.sh");
        var portalPort = Run.FreePort();
        var portal = $"http://127.0.0.1:{portalPort}";
        // Access tokens of 90 s: every Portal page load finds less than two minutes left, so the journey runs
        // on silently refreshed tokens throughout (a broken refresh signs the person out and fails it).
        await using var cluster = await Cluster.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Platform:Portal:Url"] = portal, ["Platform:AccessTokenLifetime"] = "00:01:30",
        });
        await cluster.StartAgentAsync("e2e-node", portRangeStart: 33000, bridgePrefix: "pjny", subnetBase: 112);
        var portalProcess = StartPortal(cluster.Host.BaseAddress, portal, Path.Combine(cluster.Host.DataDir, "portal"));
        var screenshots = Path.Combine(RegistryFixture.RepoRoot, ".test-run", "screenshots");
        var home = Path.Combine(cluster.Host.DataDir, "chromium-home");
        Directory.CreateDirectory(home);
        IPlaywright? playwright = null;
        IBrowser? browser = null;
        IPage? page = null;
        var step = "the Portal starting";   // named in the failure, so a CI log that shows only the message says where
        try
        {
            await Cluster.WaitAsync(async () =>
            {
                try { using var c = new HttpClient(); return (await c.GetAsync(portal + "/healthz")).IsSuccessStatusCode; }
                catch (HttpRequestException) { return false; }
            }, 60, "the Portal");

            playwright = await Microsoft.Playwright.Playwright.CreateAsync();
            browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = "/usr/bin/chromium", Headless = true,
                Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
                Env = new Dictionary<string, string> { ["HOME"] = home, ["XDG_CONFIG_HOME"] = home, ["XDG_CACHE_HOME"] = home },
            });
            var context = await browser.NewContextAsync();
            context.SetDefaultTimeout(30_000);
            page = await context.NewPageAsync();

            // The platform admin: a team, its quota, a user who becomes the team's admin.
            step = "the admin creating a team, its quota and a user";
            await SignInAsync(page, portal, PlatformHost.AdminEmail, PlatformHost.AdminPassword);
            await OpenAsync(page, portal + "/admin/teams");
            await Field(page, "Team name").FillAsync("e2e");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create team" }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "e2e" })).ToBeVisibleAsync();
            var team = page.GetByTestId("team-e2e");
            await team.GetByLabel("Memory (MiB)", new() { Exact = true }).FillAsync("2048");
            await team.GetByRole(AriaRole.Button, new() { Name = "Save quota" }).ClickAsync();
            await Assertions.Expect(page.GetByText("Quota of e2e saved")).ToBeVisibleAsync();

            await OpenAsync(page, portal + "/admin/users");
            await Field(page, "Email").FillAsync("dev@e2e.test");
            await Field(page, "Password").FillAsync("dev-password-123");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create user" }).ClickAsync();
            await Assertions.Expect(page.GetByTestId("users")).ToContainTextAsync("dev@e2e.test");

            await OpenAsync(page, portal + "/teams/e2e");
            await Assertions.Expect(page.GetByTestId("team-quota")).ToContainTextAsync("of 2048 MiB");
            await Field(page, "Email of an existing user").FillAsync("dev@e2e.test");
            await page.GetByLabel("Role").ClickAsync();
            await page.GetByRole(AriaRole.Option, new() { Name = "admin", Exact = true }).ClickAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Add or change" }).ClickAsync();
            await Assertions.Expect(page.GetByTestId("members")).ToContainTextAsync("dev@e2e.test");
            await SignOutAsync(page);

            // The team's new admin: a project, an app from the registry, running, through the router.
            step = "the team admin creating a project and an app";
            await SignInAsync(page, portal, "dev@e2e.test", "dev-password-123");
            await OpenAsync(page, portal + "/teams/e2e");
            await Field(page, "New project").FillAsync("web");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create project" }).ClickAsync();
            await Assertions.Expect(page.GetByText("Project web created")).ToBeVisibleAsync();
            await OpenAsync(page, portal + "/teams/e2e/projects/web");
            await Field(page, "Name").FillAsync("hello");
            // The image field suggests as one types; its list re-rendering late (a busy machine) once took the
            // keys meant for the next field. A person looks at the form before pressing Create: so does the test.
            for (var attempt = 0; ; attempt++)
            {
                await Field(page, "Image").FillAsync("library/hello:latest");
                await Field(page, "Image").PressAsync("Tab");
                await Field(page, "Memory (MiB)").FillAsync("64");
                if (await Field(page, "Image").InputValueAsync() == "library/hello:latest" && await Field(page, "Memory (MiB)").InputValueAsync() == "64"
                    || attempt == 2) break;
            }
            await Assertions.Expect(Field(page, "Image")).ToHaveValueAsync("library/hello:latest");
            await Assertions.Expect(Field(page, "Memory (MiB)")).ToHaveValueAsync("64");
            await Field(page, "Environment (KEY=value, one per line)").FillAsync("GREETING=from the portal");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create app" }).ClickAsync();
            await page.WaitForURLAsync(portal + "/teams/e2e/projects/web/apps/hello");
            await Assertions.Expect(page.GetByText("ready 1/1")).ToBeVisibleAsync(new() { Timeout = 60_000 });

            // The app's URL as the page shows it, opened in a tab of its own until it answers with the expected text.
            async Task OpenAppAsync(string expected)
            {
                var url = await page.GetByTestId("app-url").InnerTextAsync();
                var routed = await context.NewPageAsync();
                var seen = "";
                await Cluster.WaitAsync(async () =>
                {
                    var response = await routed.GotoAsync(url);
                    seen = $"{response?.Status}: {await routed.ContentAsync()}";
                    return response?.Status == 200 && seen.Contains(expected);
                }, 30, () => $"'{expected}' through the router in the browser at {url} (last: {seen})");
                await routed.CloseAsync();
            }
            step = "opening the app's URL";
            await OpenAppAsync("Hello from hello (from the portal)");

            step = "scaling to 2";
            await Field(page, "Instances").FillAsync("2");
            await Field(page, "Instances").PressAsync("Tab");
            await page.GetByRole(AriaRole.Button, new() { Name = "Scale" }).ClickAsync();
            await Assertions.Expect(page.GetByText("ready 2/2")).ToBeVisibleAsync(new() { Timeout = 60_000 });
            await Assertions.Expect(page.GetByTestId("instances").Locator("tbody tr")).ToHaveCountAsync(2);
            await Assertions.Expect(page.GetByTestId("logs")).ToContainTextAsync("serving on port 8080");

            step = "deleting the app";
            await page.GetByRole(AriaRole.Button, new() { Name = "Delete app" }).ClickAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Delete", Exact = true }).ClickAsync();
            await page.WaitForURLAsync(portal + "/teams/e2e/projects/web");
            await Assertions.Expect(page.GetByTestId("no-apps")).ToBeVisibleAsync();

            // From git: the app is created in the Portal, the code pushed with plain git, and the build
            // followed in the Builds tab to its release, which the Releases tab shows as current.
            step = "creating an app built from git and pushing to it";
            await Field(page, "Name").FillAsync("site");
            await page.GetByText("Build from git instead of running an image").ClickAsync();
            await Field(page, "Memory (MiB)").FillAsync("64");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create app" }).ClickAsync();
            await page.WaitForURLAsync(portal + "/teams/e2e/projects/web/apps/site");
            await page.GetByRole(AriaRole.Tab, new() { Name = "Builds" }).ClickAsync();
            await Assertions.Expect(page.GetByTestId("push-commands")).ToContainTextAsync("/git/e2e/web/site.git");
            var token = await cluster.Host.UserTokenAsync("dev@e2e.test", "dev-password-123");
            var work = Path.Combine(cluster.Host.DataDir, "site-src");
            Directory.CreateDirectory(work);
            var source = await BuildKit.Source.InitAsync(work, $"{cluster.Host.BaseAddress}git/e2e/web/site.git".Replace("http://", $"http://dev:{token}@"));
            await source.PushAsync(new Dictionary<string, string>
            {
                ["Dockerfile"] = "FROM busybox\nRUN mkdir -p /www && echo 'hello from git' > /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
            }, "first");
            step = "following the build to its release";
            var build = page.GetByTestId("build-1");
            await Assertions.Expect(build).ToContainTextAsync("Succeeded", new() { Timeout = 120_000 });
            await Assertions.Expect(build).ToContainTextAsync("dev@e2e.test");
            await build.GetByRole(AriaRole.Button, new() { Name = "Show the log of build 1" }).ClickAsync();
            await Assertions.Expect(page.GetByTestId("build-log")).ToContainTextAsync("==> release v1");
            await page.GetByRole(AriaRole.Tab, new() { Name = "Releases" }).ClickAsync();
            await Assertions.Expect(page.GetByTestId("release-1")).ToContainTextAsync("Build #1");
            await Assertions.Expect(page.GetByTestId("release-1").GetByTestId("current")).ToBeVisibleAsync();
            step = "opening the built app";
            await page.GetByRole(AriaRole.Tab, new() { Name = "Overview" }).ClickAsync();
            await Assertions.Expect(page.GetByText("ready 1/1")).ToBeVisibleAsync(new() { Timeout = 60_000 });
            await OpenAppAsync("hello from git");
            Assert.Contains("Refreshed the access token of dev@e2e.test", await File.ReadAllTextAsync(Path.Combine(cluster.Host.DataDir, "portal", "portal.log")));
        }
        catch (Exception e)
        {
            if (page is not null)
            {
                try
                {
                    Directory.CreateDirectory(screenshots);
                    await page.ScreenshotAsync(new() { Path = Path.Combine(screenshots, $"journey-{DateTime.UtcNow:HHmmss}.png"), FullPage = true });
                    await File.WriteAllTextAsync(Path.Combine(screenshots, $"journey-{DateTime.UtcNow:HHmmss}.html"), await page.ContentAsync());
                }
                catch (PlaywrightException shotError)
                {
                    Console.Error.WriteLine("no screenshot: " + shotError.Message);
                }
            }
            var portalLog = Path.Combine(cluster.Host.DataDir, "portal", "portal.log");
            var tail = File.Exists(portalLog) ? string.Join("\n", File.ReadLines(portalLog).TakeLast(40)) : "(no portal.log)";
            throw new InvalidOperationException($"The journey failed at {step}: {e.Message}\n--- the last lines of portal.log\n{tail}", e);
        }
        finally
        {
            try { if (browser is not null) await browser.CloseAsync(); }
            catch (PlaywrightException) { }
            playwright?.Dispose();
            portalProcess.Kill(entireProcessTree: true);
            await portalProcess.WaitForExitAsync();
        }
    }
}
