using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Cli;

/// <summary>The built <c>platform</c> tool run as a process, as a developer runs it, against a real Api over HTTP.</summary>
public sealed partial class CliTests : IAsyncLifetime
{
    private readonly string _home = Path.Combine(Path.GetTempPath(), "platform-cli-tests", Guid.NewGuid().ToString("N")[..8]);
    private PlatformHost _host = null!;

    private string ConfigFile => Runner.ConfigFile;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_home);
        // Access tokens live 5 s: the refresh test sees one expire for real.
        // Pushes queue builds that no worker runs: these tests are about the CLI, not buildah.
        _host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?>
        {
            ["Platform:AccessTokenLifetime"] = "00:00:05", ["Platform:Builds:Workers"] = "0",
        });
        _host.Admin();   // starts the server
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        Directory.Delete(_home, recursive: true);
    }

    private CliRunner Runner => new(_home);

    private ProcessStartInfo Start(string[] args, Dictionary<string, string>? env) => Runner.Start(args, env);

    private Task<(int Code, string Out, string Err)> RunAsync(string[] args, Dictionary<string, string>? env = null, string? stdin = null, string? cwd = null) =>
        Runner.RunAsync(args, env, stdin, cwd);

    private Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => RunAsync(args, null);

    [GeneratedRegex(@"(http\S+/connect/verify\S*)")]
    private static partial Regex Link();

    [GeneratedRegex(@"code: (\S+)")]
    private static partial Regex Code();

    /// <summary><c>platform login</c> as a person does it: the CLI prints a link and a code, the person approves in a browser, the CLI ends signed in.</summary>
    private async Task<(int Code, string Out, string Err)> DeviceLoginAsync(string email, string password, string decision = "approve")
    {
        using var p = Process.Start(Start(["login", _host.BaseAddress.ToString()], null))!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var err = new StringBuilder();
        string? link = null, code = null;
        while (link is null || code is null)
        {
            var line = await p.StandardError.ReadLineAsync() ?? throw new Xunit.Sdk.XunitException("the CLI ended before it printed a link: " + err + await stdout);
            err.AppendLine(line);
            link ??= Link().Match(line) is { Success: true } l ? l.Groups[1].Value : null;
            code ??= Code().Match(line) is { Success: true } c ? c.Groups[1].Value : null;
        }
        var rest = p.StandardError.ReadToEndAsync();
        var (page, html, browser) = await Browser.VisitSignedInAsync(_host, new Uri(link).PathAndQuery, email, password);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains(WebUtility.HtmlEncode(code), html);   // the page shows the code the terminal shows
        await Browser.DecideDeviceAsync(browser, html, code, decision);
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(guard.Token);
        return (p.ExitCode, await stdout, err + await rest);
    }

    [Fact]
    public async Task Device_sign_in_keeps_private_tokens_that_refresh_when_they_expire_and_logout_forgets_them()
    {
        var (code, stdout, stderr) = await DeviceLoginAsync(PlatformHost.AdminEmail, PlatformHost.AdminPassword);
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains($"Signed in to {_host.BaseAddress.ToString().TrimEnd('/')} as {PlatformHost.AdminEmail}", stdout);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ConfigFile));
        var saved = JsonDocument.Parse(await File.ReadAllTextAsync(ConfigFile)).RootElement;
        var firstAccess = saved.GetProperty("accessToken").GetString()!;
        Assert.DoesNotContain(firstAccess, stdout + stderr);   // no token is printed
        Assert.DoesNotContain(saved.GetProperty("refreshToken").GetString()!, stdout + stderr);

        var who = await RunAsync("whoami");
        Assert.True(who.Code == 0, who.Err);
        Assert.Contains(PlatformHost.AdminEmail, who.Out);
        Assert.Contains("platform admin", who.Out);

        // The access token lives 5 s: once the Api refuses it, the CLI refreshes it and the command just works.
        await Nodes.Cluster.WaitAsync(async () => (await _host.Http(firstAccess).GetAsync("/api/v1/me")).StatusCode == HttpStatusCode.Unauthorized, 30, "the access token expired");
        var later = await RunAsync("whoami", "--json");
        Assert.True(later.Code == 0, later.Err);
        Assert.Equal(PlatformHost.AdminEmail, JsonDocument.Parse(later.Out).RootElement.GetProperty("email").GetString());
        Assert.NotEqual(firstAccess, JsonDocument.Parse(await File.ReadAllTextAsync(ConfigFile)).RootElement.GetProperty("accessToken").GetString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ConfigFile));

        // The saved tokens go to the Api they came from only: --api naming another origin sends none.
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var heard = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            using var stream = client.GetStream();
            var reader = new StreamReader(stream);
            var head = new StringBuilder();
            while (await reader.ReadLineAsync() is { Length: > 0 } line) head.AppendLine(line);
            await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
            return head.ToString();
        });
        var elsewhere = await RunAsync("whoami", "--api", $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        listener.Stop();
        Assert.Equal(1, elsewhere.Code);
        var request = await heard;
        Assert.StartsWith("GET /api/v1/me", request);   // the control: the request did arrive
        Assert.DoesNotContain("Authorization", request, StringComparison.OrdinalIgnoreCase);

        // PLATFORM_TOKEN acts for one process and is never written into the profile (the device sign-in stays).
        var pat = await _host.UserTokenAsync("ci@example.com");
        var withEnv = await RunAsync(["target", "--team", "nope"], new() { ["PLATFORM_TOKEN"] = pat });
        Assert.Equal(1, withEnv.Code);   // ci@ sees no team "nope"; what matters is the file below
        var profile = await File.ReadAllTextAsync(ConfigFile);
        Assert.DoesNotContain(pat, profile);
        Assert.Contains("refreshToken", profile);

        var logout = await RunAsync("logout");
        Assert.True(logout.Code == 0, logout.Err);
        var after = await RunAsync("whoami");
        Assert.Equal(1, after.Code);
        Assert.DoesNotContain("accessToken", await File.ReadAllTextAsync(ConfigFile));
    }

    [Fact]
    public async Task A_sign_in_denied_in_the_browser_ends_with_exit_1_and_no_tokens()
    {
        var (code, stdout, stderr) = await DeviceLoginAsync(PlatformHost.AdminEmail, PlatformHost.AdminPassword, "deny");
        Assert.Equal(1, code);
        Assert.Contains("denied", stderr);
        Assert.False(File.Exists(ConfigFile) && File.ReadAllText(ConfigFile).Contains("accessToken"), stdout);
    }

    [Fact]
    public async Task A_developer_creates_scales_configures_rolls_back_and_deletes_an_app_with_tables_json_and_clear_refusals()
    {
        var admin = _host.Admin();
        (await admin.PostAsync("/api/v1/teams", JsonBody(new { name = "acme" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams/acme/projects", JsonBody(new { name = "web" }))).EnsureSuccessStatusCode();
        var token = await _host.UserTokenAsync("dev@example.com");
        (await admin.PutAsync("/api/v1/teams/acme/members/dev@example.com", JsonBody(new { role = "developer" }))).EnsureSuccessStatusCode();
        var env = new Dictionary<string, string> { ["PLATFORM_TOKEN"] = token };
        Task<(int Code, string Out, string Err)> Cli(params string[] args) => RunAsync(args, env);

        // A personal access token for CI: login --token keeps it; PLATFORM_TOKEN would do without a file.
        var login = await RunAsync(["login", _host.BaseAddress.ToString(), "--token", token]);
        Assert.True(login.Code == 0, login.Err);
        Assert.DoesNotContain(token, login.Out + login.Err);

        // No target yet: refused with what to do. A usage mistake is exit 2.
        var untargeted = await Cli("apps", "list");
        Assert.Equal(1, untargeted.Code);
        Assert.Contains("platform target", untargeted.Err);
        Assert.Equal(2, (await Cli("scale", "shop", "many")).Code);
        Assert.Equal(2, (await Cli("apps", "frobnicate")).Code);
        var target = await Cli("target", "--team", "acme", "--project", "web");
        Assert.True(target.Code == 0, target.Err);
        var wrongTarget = await Cli("target", "--team", "acme", "--project", "nope");
        Assert.Equal(1, wrongTarget.Code);
        Assert.Contains("was not found", wrongTarget.Err);

        var created = await Cli("apps", "create", "shop", "--image", "library/hello:latest", "-e", "GREETING=hi", "-e", "SECRET=s3cret");
        Assert.True(created.Code == 0, created.Err);
        Assert.Contains("Created shop: http://shop-web-acme.apps.localhost", created.Out);
        var invalid = await Cli("apps", "create", "Shop!", "--image", "library/hello:latest");
        Assert.Equal(1, invalid.Code);
        Assert.Contains("name:", invalid.Err);   // the problem names the field

        var list = await Cli("apps", "list");
        Assert.Matches(@"NAME\s+READY\s+IMAGE\s+URL", list.Out);
        Assert.Matches(@"shop\s+0/1\s+library/hello:latest", list.Out);
        var json = JsonDocument.Parse((await Cli("apps", "list", "--json")).Out).RootElement;
        Assert.Equal("shop", json.GetProperty("items")[0].GetProperty("name").GetString());

        var scaled = await Cli("scale", "shop", "2");
        Assert.True(scaled.Code == 0, scaled.Err);
        Assert.Equal(2, JsonDocument.Parse((await Cli("apps", "show", "shop", "--json")).Out).RootElement.GetProperty("instances").GetInt32());

        var masked = await Cli("env", "list", "shop");
        Assert.Contains("SECRET=********", masked.Out);
        Assert.DoesNotContain("s3cret", masked.Out);
        Assert.Contains("SECRET=s3cret", (await Cli("env", "list", "shop", "--reveal")).Out);
        Assert.True((await Cli("env", "set", "shop", "COLOR=blue")).Code == 0);
        Assert.True((await Cli("env", "unset", "shop", "GREETING")).Code == 0);
        var envJson = JsonDocument.Parse((await Cli("env", "list", "shop", "--json", "--reveal")).Out).RootElement;
        Assert.Equal(["COLOR", "SECRET"], envJson.EnumerateObject().Select(p => p.Name).Order().ToArray());
        Assert.Equal(1, (await Cli("env", "set", "shop", "NOEQUALS")).Code);

        var deployed = await Cli("deploy", "shop", "--image", "library/hello:2");
        Assert.True(deployed.Code == 0, deployed.Err);
        var releases = await Cli("releases", "shop");
        Assert.Matches(@"v\d+\s+current\s+.*library/hello:2", releases.Out);
        var rolledBack = await Cli("rollback", "shop");
        Assert.True(rolledBack.Code == 0, rolledBack.Err);
        Assert.Equal("library/hello:latest", JsonDocument.Parse((await Cli("apps", "show", "shop", "--json")).Out).RootElement.GetProperty("image").GetString());

        Assert.Contains("http://shop-web-acme.apps.localhost", (await Cli("open", "shop")).Out);
        var unknown = await Cli("apps", "show", "nope");
        Assert.Equal(1, unknown.Code);
        Assert.Contains("App 'nope' was not found", unknown.Err);

        var refusedDelete = await Cli("apps", "delete", "shop");   // no one to answer: refused, nothing deleted
        Assert.Equal(1, refusedDelete.Code);
        Assert.True((await Cli("apps", "delete", "shop", "--yes")).Code == 0);
        Assert.Contains("no apps yet", (await Cli("apps", "list")).Out);
    }

    private Task<(int Code, string Out)> GitAsync(string cwd, params string[] args) => Runner.GitAsync(cwd, args);

    [Fact]
    public async Task Git_pushes_through_the_CLIs_credential_helper_which_answers_only_its_own_Api_and_team_commands_work()
    {
        var admin = _host.Admin();
        (await admin.PostAsync("/api/v1/teams", JsonBody(new { name = "acme" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams/acme/projects", JsonBody(new { name = "web" }))).EnsureSuccessStatusCode();
        await _host.UserTokenAsync("dev@example.com", "dev-password-1");
        (await admin.PutAsync("/api/v1/teams/acme/members/dev@example.com", JsonBody(new { role = "admin" }))).EnsureSuccessStatusCode();
        var login = await DeviceLoginAsync("dev@example.com", "dev-password-1");
        Assert.True(login.Code == 0, login.Err);
        Assert.True((await RunAsync("target", "-t", "acme", "-p", "web")).Code == 0);
        Assert.True((await RunAsync("apps", "create", "site", "--memory", "64")).Code == 0);

        var repo = Path.Combine(_home, "site");
        Directory.CreateDirectory(repo);
        Assert.Equal(0, (await GitAsync(repo, "init", "-q", "-b", "main")).Code);
        await File.WriteAllTextAsync(Path.Combine(repo, "Dockerfile"), "FROM busybox\n");
        Assert.Equal(0, (await GitAsync(repo, "add", ".")).Code);
        Assert.Equal(0, (await GitAsync(repo, "-c", "user.name=me", "-c", "user.email=me@example.com", "commit", "-qm", "one")).Code);
        var url = (await RunAsync("git", "remote", "site")).Out.Trim();
        Assert.EndsWith("/git/acme/web/site.git", url);
        // The control: without a credential the Api's git refuses the push.
        var refused = await GitAsync(repo, "push", url, "main");
        Assert.NotEqual(0, refused.Code);

        var added = await RunAsync(["git", "remote", "site", "--add"], cwd: repo);
        Assert.True(added.Code == 0, added.Err);
        // Only this CLI answers for the Api's origin: an empty helper first resets any global one (a plain-text store).
        var helpers = (await GitAsync(repo, "config", "--get-all", $"credential.{new Uri(url).GetLeftPart(UriPartial.Authority)}.helper")).Out
            .Split('\n').Select(l => l.Trim()).ToList();
        Assert.Equal("", helpers[0]);
        Assert.EndsWith("git credential", helpers[1]);
        var pushed = await GitAsync(repo, "push", "platform", "main");
        Assert.True(pushed.Code == 0, pushed.Out);
        var builds = await RunAsync("builds", "list", "site");
        Assert.Matches(@"#1\s+Queued", builds.Out);   // the push queued a build (no worker runs it here)
        Assert.Contains("remote: No build worker is running on any Api replica", pushed.Out);   // so the push did not wait for it
        var gitToken = JsonDocument.Parse(await File.ReadAllTextAsync(ConfigFile)).RootElement.GetProperty("gitToken").GetString()!;
        Assert.DoesNotContain(gitToken, (await GitAsync(repo, "config", "--list")).Out);   // git keeps the helper, never the token

        // The helper answers its own Api only: another host gets nothing (git would ask elsewhere), not the token.
        var origin = new Uri(url);
        var other = await RunAsync(["git", "credential", "get"], stdin: "protocol=https\nhost=evil.example\n\n");
        Assert.Equal((0, ""), (other.Code, other.Out));
        var samePortOtherScheme = await RunAsync(["git", "credential", "get"], stdin: $"protocol=https\nhost={origin.Authority}\n\n");
        Assert.Equal("", samePortOtherScheme.Out);
        var own = await RunAsync(["git", "credential", "get"], stdin: $"protocol={origin.Scheme}\nhost={origin.Authority}\npath=git/acme/web/site.git\n\n");
        Assert.Contains($"password={gitToken}", own.Out);

        // Tokens, members, quota.
        Assert.Contains($"git on {Environment.MachineName}", (await RunAsync("tokens", "list")).Out);
        Assert.True((await RunAsync("members", "set", "dev2@example.com", "developer")).Code == 1);   // no such person: refused
        await _host.UserTokenAsync("dev2@example.com");
        var set = await RunAsync("members", "set", "dev2@example.com", "developer");
        Assert.True(set.Code == 0, set.Err);
        Assert.Matches(@"dev2@example\.com\s+developer", (await RunAsync("members", "list")).Out);
        Assert.True((await RunAsync("members", "remove", "dev2@example.com")).Code == 0);
        Assert.DoesNotContain("dev2@example.com", (await RunAsync("members", "list")).Out);
        Assert.Matches(@"apps\s+1\s+", (await RunAsync("quota")).Out);

        // Signing out revokes the token made for git: the remote no longer takes pushes.
        Assert.True((await RunAsync("logout")).Code == 0);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await _host.Http(gitToken).GetAsync("/api/v1/me")).StatusCode);
    }

    [Fact]
    public async Task Bash_completes_commands_and_subcommands_from_the_script_the_CLI_prints()
    {
        var script = await RunAsync("completion", "bash");
        Assert.True(script.Code == 0, script.Err);
        var file = Path.Combine(_home, "platform.bash");
        await File.WriteAllTextAsync(file, script.Out);
        string Complete(string line) => $$"""
            COMP_LINE="{{line}}"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _platform_complete; echo "${COMPREPLY[*]}"
            """;
        async Task<List<string>> BashAsync(params string[] lines)
        {
            var test = $"platform() {{ dotnet '{CliRunner.Tool}' \"$@\"; }}\nsource '{file}'\n" + string.Concat(lines.Select(l => Complete(l) + "\n"));
            var info = new ProcessStartInfo("bash", ["-c", test]) { RedirectStandardOutput = true, RedirectStandardError = true };
            info.Environment["HOME"] = _home;
            info.Environment["XDG_CONFIG_HOME"] = Path.Combine(_home, "config");
            info.Environment.Remove("PLATFORM_TOKEN");
            info.Environment.Remove("PLATFORM_API");
            using var bash = Process.Start(info)!;
            var output = await bash.StandardOutput.ReadToEndAsync();
            await bash.WaitForExitAsync();
            // One line per completion asked (an empty one when nothing fits), each with its words in order.
            return output.Split('\n')[..lines.Length].Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order())).ToList();
        }
        Assert.Equal(["scale", "create", "list logs"], await BashAsync("platform sca", "platform apps cr", "platform builds l"));

        // App names come from the Api, for the project the line names or the target: signed in as a developer of acme/web.
        var admin = _host.Admin();
        (await admin.PostAsync("/api/v1/teams", JsonBody(new { name = "acme" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams/acme/projects", JsonBody(new { name = "web" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams/acme/projects", JsonBody(new { name = "jobs" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams", JsonBody(new { name = "rival" }))).EnsureSuccessStatusCode();
        (await admin.PostAsync("/api/v1/teams/rival/projects", JsonBody(new { name = "web" }))).EnsureSuccessStatusCode();
        foreach (var (team, project, app) in new[] { ("acme", "web", "shop"), ("acme", "web", "shipping"), ("acme", "jobs", "nightly"), ("rival", "web", "secret-plans") })
            (await admin.PostAsync($"/api/v1/teams/{team}/projects/{project}/apps", JsonBody(new { name = app }))).EnsureSuccessStatusCode();
        // Not signed in yet: nothing is offered, and completion does not fail (the control below shows the same line completing).
        Assert.Equal([""], await BashAsync("platform scale -t acme -p web s"));
        var token = await _host.UserTokenAsync("dev@example.com");
        (await admin.PutAsync("/api/v1/teams/acme/members/dev@example.com", JsonBody(new { role = "developer" }))).EnsureSuccessStatusCode();
        Assert.Equal(0, (await RunAsync(["login", _host.BaseAddress.ToString(), "--token", token])).Code);
        Assert.Equal(0, (await RunAsync("target", "-t", "acme", "-p", "web")).Code);
        Assert.Equal(
            ["shipping shop", "shop", "nightly", "", "", "shipping shop"],
            await BashAsync(
                "platform scale s",                       // the target's apps
                "platform logs sho",
                "platform builds logs -p jobs n",         // another project named on the line
                "platform scale -t rival -p web s",       // another team's apps: refused by the Api, so nothing
                "platform apps create s",                 // a new name: nothing to complete
                "platform env list s"));
        Assert.Equal(2, (await RunAsync("completion", "fish")).Code);   // an unknown shell is a usage error
    }

    private static StringContent JsonBody(object value) => new(JsonSerializer.Serialize(value), Encoding.UTF8, "application/json");
}
