using System.CommandLine;
using System.Text.Json;
using static Platform.Cli.Commands;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>Apps and what a developer does to them: create, deploy, scale, env, logs, instances, releases, rollback, open.</summary>
public static class AppCommands
{
    private const string Masked = "********";

    public static IEnumerable<Command> All(TextWriter stdout)
    {
        yield return AppsCommand(stdout);
        yield return Deploy(stdout);
        yield return Scale(stdout);
        yield return Env(stdout);
        yield return Instances(stdout);
        yield return Logs(stdout);
        yield return Releases(stdout);
        yield return Rollback(stdout);
        yield return Open(stdout);
    }

    private static Argument<string> AppName() => Commands.AppArgument();

    private static Command AppsCommand(TextWriter stdout)
    {
        var list = new Command("list", """
            The project's apps: image, instances ready of wanted, URL.

            Example:
              platform apps list --team acme --project web
            """).With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync(c.Apps + "?limit=200", ct);
            c.Out.Print(page, ["name", "ready", "image", "url"], Items, a => [S(a, "name"), Ready(a), S(a, "image") ?? "(built from git)", S(a, "url")],
                $"Project {c.Project} has no apps yet: `platform apps create <name> --image <image>`.");
        });

        var name = new Argument<string>("app") { Description = "The new app's name (lower-case letters, digits and '-')" };
        var image = new Option<string?>("--image", "-i") { Description = "The image to run (team/project/repo:tag of the platform's registry); without it the app is built from a git push" };
        var instances = new Option<int?>("--instances", "-n") { Description = "How many instances (default 1)" };
        var memory = new Option<int?>("--memory") { Description = "Memory per instance, MiB (default 256)" };
        var cpu = new Option<int?>("--cpu") { Description = "CPU per instance, millicores (default 250)" };
        var port = new Option<int?>("--port") { Description = "The port the app listens on (default 8080)" };
        var env = new Option<string[]>("--env", "-e") { Description = "An environment variable, KEY=VALUE (repeat it)", AllowMultipleArgumentsPerToken = false };
        var create = new Command("create", """
            Create an app from an image, or (without --image) one built from git pushes.

            Examples:
              platform apps create shop --image acme/web/shop:1 --instances 2 -e GREETING=hi
              platform apps create site          # then: platform git remote site
            """) { name, image, instances, memory, cpu, port, env };
        create.With(stdout, async (c, ct) =>
        {
            var app = await c.Api.SendAsync(HttpMethod.Post, c.Apps, new
            {
                name = c.Parse.GetValue(name), image = c.Parse.GetValue(image), instances = c.Parse.GetValue(instances),
                memoryMiB = c.Parse.GetValue(memory), cpuMillicores = c.Parse.GetValue(cpu), port = c.Parse.GetValue(port),
                env = Pairs(c.Parse.GetValue(env) ?? []),
            }, ct);
            if (c.Out.Json) c.Out.Fields(app);
            else c.Out.Say($"Created {S(app, "name")}: {S(app, "url")}" + (S(app, "gitUrl") is { } git ? $"\nPush to deploy: git push {git} main" : ""));
        });

        var showName = AppName();
        var show = new Command("show", """
            An app: what it runs, its resources, status and URL.

            Example:
              platform apps show shop
            """) { showName };
        show.With(stdout, async (c, ct) =>
        {
            var a = await c.Api.GetAsync(c.App(c.Parse.GetValue(showName)!), ct);
            c.Out.Fields(a, ("name", S(a, "name")), ("url", S(a, "url")), ("image", S(a, "image") ?? "(built from git)"),
                ("instances", Ready(a) + " ready"), ("resources", $"{S(a, "memoryMiB")} MiB, {S(a, "cpuMillicores")} millicores, port {S(a, "port")}"),
                ("status", a.TryGetProperty("status", out var st) ? S(st, "message") : null), ("git", S(a, "gitUrl")), ("created", Ago(a, "createdAt")));
        });

        var delName = AppName();
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask (scripts)" };
        var delete = new Command("delete", """
            Delete an app and stop its instances. Asks first unless --yes.

            Example:
              platform apps delete shop --yes
            """) { delName, yes };
        delete.With(stdout, async (c, ct) =>
        {
            var app = c.Parse.GetValue(delName)!;
            if (!c.Parse.GetValue(yes))
            {
                if (Console.IsInputRedirected) throw new CliException($"Deleting {app} needs --yes when no one can answer the question.");
                Console.Error.Write($"Delete {app} of {c.Team}/{c.Project} and stop its instances? Type its name to confirm: ");
                if (Console.ReadLine()?.Trim() != app) throw new CliException("Not deleted.");
            }
            await c.Api.SendAsync(HttpMethod.Delete, c.App(app), null, ct);
            c.Out.Say($"Deleted {app}.", new { deleted = app });
        });

        return new Command("apps", "List, create, show and delete apps.") { list, create, show, delete };
    }

    private static Command Deploy(TextWriter stdout)
    {
        var name = AppName();
        var image = new Option<string>("--image", "-i") { Description = "The image to roll out", Required = true };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the rollout until it succeeds (exit 0) or is rolled back (exit 1)" };
        var deploy = new Command("deploy", """
            Roll an app out to another image (a new release); with --wait, follow the rollout live.

            Example:
              platform deploy shop --image acme/web/shop:2 --wait
            """) { name, image, wait };
        return deploy.With(stdout, async (c, ct) =>
        {
            var app = c.Parse.GetValue(name)!;
            var updated = await c.Api.SendAsync(HttpMethod.Patch, c.App(app), new { image = c.Parse.GetValue(image) }, ct);
            if (!c.Parse.GetValue(wait))
            {
                if (c.Out.Json) c.Out.Fields(updated);
                else c.Out.Say($"Rolling {app} out to {S(updated, "image")}.");
                return;
            }
            await FollowRolloutAsync(c, app, ct);
        });
    }

    /// <summary>Prints the rollout's progress as it changes until it ends; a rollout that did not succeed is exit 1.</summary>
    public static async Task FollowRolloutAsync(Context c, string app, CancellationToken ct)
    {
        string? last = null;
        while (true)
        {
            var r = await c.Api.GetAsync(c.App(app) + "/rollout", ct);
            var state = S(r, "state");
            var line = $"{state}: {Side(r, "new")} new ready, {Side(r, "old")} old" + (S(r, "pace") is { } pace ? $" ({pace})" : "") + (S(r, "message") is { } m && state != "Progressing" ? $" — {m}" : "");
            if (line != last && !c.Out.Json) Console.Error.WriteLine($"  {DateTime.Now:HH:mm:ss} {line}");
            last = line;
            if (state != "Progressing")
            {
                if (c.Out.Json) c.Out.Fields(r);
                else c.Out.Say(state == "Succeeded" ? $"{app} rolled out (generation {S(r, "generation")})." : $"{app}'s rollout ended {state}.");
                if (state != "Succeeded") throw new CliException($"The rollout of {app} did not succeed: {state}" + (S(r, "message") is { } why ? $" ({why})" : "") + ".");
                return;
            }
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }
    }

    private static string Side(JsonElement rollout, string side) =>
        rollout.TryGetProperty(side, out var s) ? $"{S(s, "ready")}/{S(s, "total")}" : "?";

    private static Command Scale(TextWriter stdout)
    {
        var name = AppName();
        var count = new Argument<int>("instances") { Description = "How many instances to run" };
        var scale = new Command("scale", """
            Run this many instances of an app (within the team's quota).

            Example:
              platform scale shop 3
            """) { name, count };
        return scale.With(stdout, async (c, ct) =>
        {
            var a = await c.Api.SendAsync(HttpMethod.Patch, c.App(c.Parse.GetValue(name)!), new { instances = c.Parse.GetValue(count) }, ct);
            if (c.Out.Json) c.Out.Fields(a);
            else c.Out.Say($"{S(a, "name")} scaled to {S(a, "instances")} ({Ready(a)} ready now).");
        });
    }

    private static Command Env(TextWriter stdout)
    {
        var listName = AppName();
        var reveal = new Option<bool>("--reveal") { Description = "Show the values (developers and up; viewers always see them masked)" };
        var list = new Command("list", """
            An app's environment, values masked unless --reveal.

            Examples:
              platform env list shop
              platform env list shop --reveal
            """) { listName, reveal };
        list.With(stdout, async (c, ct) =>
        {
            var a = await c.Api.GetAsync(c.App(c.Parse.GetValue(listName)!), ct);
            var env = a.TryGetProperty("env", out var e) && e.ValueKind == JsonValueKind.Object ? e : default;
            var shown = c.Parse.GetValue(reveal);
            if (c.Out.Json)
            {
                var values = env.ValueKind == JsonValueKind.Object ? env.EnumerateObject().ToDictionary(p => p.Name, p => shown ? p.Value.GetString() : Masked) : [];
                c.Out.Say("", values);
                return;
            }
            var rows = env.ValueKind == JsonValueKind.Object ? env.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).ToList() : [];
            if (rows.Count == 0) { c.Out.Say("No environment variables."); return; }
            foreach (var p in rows) c.Out.Out.WriteLine($"{p.Name}={(shown ? p.Value.GetString() : Masked)}");
            if (shown && rows.Any(p => p.Value.GetString() == Masked))
                Console.Error.WriteLine("(the Api masked the values: viewers do not see them)");
        });

        var setName = AppName();
        var pairs = new Argument<string[]>("pairs") { Description = "KEY=VALUE pairs", Arity = ArgumentArity.OneOrMore };
        var set = new Command("set", """
            Set environment variables (a new release, rolled out).

            Example:
              platform env set shop GREETING=hello COLOR=blue
            """) { setName, pairs };
        set.With(stdout, async (c, ct) =>
        {
            var values = Pairs(c.Parse.GetValue(pairs)!);
            await c.Api.SendAsync(HttpMethod.Patch, c.App(c.Parse.GetValue(setName)!), new { env = values }, ct);
            c.Out.Say($"Set {string.Join(", ", values.Keys)}; rolling out.", new { set = values.Keys });
        });

        var unsetName = AppName();
        var keys = new Argument<string[]>("keys") { Description = "Variable names", Arity = ArgumentArity.OneOrMore };
        var unset = new Command("unset", """
            Remove environment variables (a new release, rolled out).

            Example:
              platform env unset shop COLOR
            """) { unsetName, keys };
        unset.With(stdout, async (c, ct) =>
        {
            var names = c.Parse.GetValue(keys)!;
            await c.Api.SendAsync(HttpMethod.Patch, c.App(c.Parse.GetValue(unsetName)!), new { env = names.ToDictionary(k => k, _ => (string?)null) }, ct);
            c.Out.Say($"Removed {string.Join(", ", names)}; rolling out.", new { unset = names });
        });
        return new Command("env", "An app's environment variables.") { list, set, unset };
    }

    private static Command Instances(TextWriter stdout)
    {
        var name = AppName();
        var command = new Command("instances", """
            An app's instances: node, state, restarts, last exit, CPU and memory.

            Example:
              platform instances shop
            """) { name };
        return command.With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync(c.App(c.Parse.GetValue(name)!) + "/instances", ct);
            c.Out.Print(page, ["id", "node", "state", "restarts", "last exit", "cpu", "memory"], Items, i =>
            [
                S(i, "id")?[^8..], S(i, "node"), S(i, "state"), S(i, "restarts"),
                S(i, "exitCode") is { } code ? $"{code} ({S(i, "reason")})" : S(i, "message") ?? "",
                $"{S(i, "usedCpuMillicores")}m", i.TryGetProperty("usedMemoryBytes", out var m) && m.TryGetInt64(out var bytes) ? $"{bytes >> 20} MiB" : "",
            ], "No instances.");
        });
    }

    private static Command Logs(TextWriter stdout)
    {
        var name = AppName();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines as the instances write them (Ctrl+C ends)" };
        var tail = new Option<int>("--tail") { Description = "How many recent lines per instance", DefaultValueFactory = _ => 100 };
        var command = new Command("logs", """
            An app's logs, every instance's lines prefixed with its id; -f follows them live.

            Examples:
              platform logs shop --tail 20
              platform logs shop -f
            """) { name, follow, tail };
        return command.With(stdout, async (c, ct) =>
        {
            var path = c.App(c.Parse.GetValue(name)!) + $"/logs?tail={c.Parse.GetValue(tail)}&follow={(c.Parse.GetValue(follow) ? "true" : "false")}";
            using var response = await c.Api.SendRawAsync(() => new HttpRequestMessage(HttpMethod.Get, path), HttpCompletionOption.ResponseHeadersRead, ct);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (c.Out.Json) c.Out.Out.WriteLine(JsonSerializer.Serialize(new { line }));
                else c.Out.Out.WriteLine(Printable(line));
                c.Out.Out.Flush();
            }
        });
    }

    private static Command Releases(TextWriter stdout)
    {
        var name = AppName();
        var command = new Command("releases", """
            An app's releases, newest first; the current one is marked.

            Example:
              platform releases shop
            """) { name };
        return command.With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync(c.App(c.Parse.GetValue(name)!) + "/releases", ct);
            c.Out.Print(page, ["version", "", "description", "image", "by", "created"], Items, r =>
            [
                "v" + S(r, "version"), S(r, "current") == "True" ? "current" : S(r, "failureReason") is not null ? "failed" : "",
                S(r, "description"), S(r, "image"), S(r, "createdBy") ?? "", Ago(r, "createdAt"),
            ], "No releases yet.");
        });
    }

    private static Command Rollback(TextWriter stdout)
    {
        var name = AppName();
        var to = new Option<int?>("--to") { Description = "The release to go back to (default: the one before the current)" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Follow the rollout" };
        var command = new Command("rollback", """
            Roll an app back to an earlier release (a new release that runs its image).

            Examples:
              platform rollback shop
              platform rollback shop --to 3 --wait
            """) { name, to, wait };
        return command.With(stdout, async (c, ct) =>
        {
            var app = c.Parse.GetValue(name)!;
            var version = c.Parse.GetValue(to);
            if (version is null)
            {
                var releases = Items(await c.Api.GetAsync(c.App(app) + "/releases", ct)).ToList();
                var current = releases.FindIndex(r => S(r, "current") == "True");
                version = current >= 0 && current + 1 < releases.Count && int.TryParse(S(releases[current + 1], "version"), out var v) ? v
                    : throw new CliException($"{app} has no release before the current one to roll back to.");
            }
            var release = await c.Api.SendAsync(HttpMethod.Post, c.App(app) + $"/releases/{version}/rollback", null, ct);
            if (c.Parse.GetValue(wait))
            {
                await FollowRolloutAsync(c, app, ct);
                return;
            }
            if (c.Out.Json) c.Out.Fields(release);
            else c.Out.Say($"Rolling {app} back to v{version} as v{S(release, "version")}.");
        });
    }

    private static Command Open(TextWriter stdout)
    {
        var name = AppName();
        var command = new Command("open", """
            The app's URL: printed, and opened in the browser when there is a desktop to open it on.

            Example:
              platform open shop
            """) { name };
        return command.With(stdout, async (c, ct) =>
        {
            var a = await c.Api.GetAsync(c.App(c.Parse.GetValue(name)!), ct);
            var url = S(a, "url")!;
            c.Out.Say(url, new { url });
            if (!c.Out.Json && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("DISPLAY") is { Length: > 0 })
                try { System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("xdg-open", [url]) { UseShellExecute = false })?.Dispose(); }
                catch (System.ComponentModel.Win32Exception) { /* no opener: the URL is printed */ }
        });
    }

    private static string Ready(JsonElement app) =>
        app.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Object ? $"{S(s, "ready")}/{S(s, "desired")}" : $"?/{S(app, "instances")}";

    /// <summary>KEY=VALUE words as a map; a word without '=' is a usage mistake the user hears about.</summary>
    private static Dictionary<string, string?> Pairs(IEnumerable<string> words) => words.ToDictionary(
        w => w.IndexOf('=') is var at and > 0 ? w[..at] : throw new CliException($"'{w}' is not KEY=VALUE."),
        w => (string?)w[(w.IndexOf('=') + 1)..]);
}
