using System.CommandLine;
using System.Text.Json;
using static Platform.Cli.Commands;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>An app's builds: list, start, cancel, and the log, followed live.</summary>
public static class BuildCommands
{
    public static Command Builds(TextWriter stdout)
    {
        var listApp = Commands.AppArgument();
        var list = new Command("list", """
            An app's builds, newest first: state, commit, what started it, how long it took.

            Example:
              platform builds list site
            """) { listApp };
        list.With(stdout, async (c, ct) =>
        {
            var page = await c.Api.GetAsync(c.App(c.Parse.GetValue(listApp)!) + "/builds", ct);
            c.Out.Print(page, ["build", "state", "commit", "trigger", "by", "started", "took"], Items, b =>
            [
                "#" + S(b, "number"), S(b, "state") + (S(b, "reason") is { } why ? $" ({why})" : ""), S(b, "commit")?[..Math.Min(7, S(b, "commit")!.Length)],
                S(b, "trigger"), S(b, "createdBy") ?? "", Ago(b, "startedAt"), Took(b),
            ], "No builds yet: push to the app's git remote (`platform git remote <app>`).");
        });

        var startApp = Commands.AppArgument();
        var commit = new Option<string?>("--commit") { Description = "The commit to build (default: the head of the app's branch)" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Follow the build's log, then its rollout" };
        var start = new Command("start", """
            Build an app again (its branch's head, or a commit); -f follows the log and the rollout.

            Example:
              platform builds start site -f
            """) { startApp, commit, follow };
        start.With(stdout, async (c, ct) =>
        {
            var app = c.Parse.GetValue(startApp)!;
            var b = await c.Api.SendAsync(HttpMethod.Post, c.App(app) + "/builds", new { commit = c.Parse.GetValue(commit) }, ct);
            if (!c.Parse.GetValue(follow))
            {
                if (c.Out.Json) c.Out.Fields(b);
                else c.Out.Say($"Build #{S(b, "number")} of {app} queued.");
                return;
            }
            await FollowAsync(c, app, int.Parse(S(b, "number")!, System.Globalization.CultureInfo.InvariantCulture), rollout: true, ct);
        });

        var logApp = Commands.AppArgument();
        var number = new Argument<int?>("number") { Description = "The build (default: the newest)", Arity = ArgumentArity.ZeroOrOne };
        var logFollow = new Option<bool>("--follow", "-f") { Description = "Print lines as they are written, until the build ends (exit 1 unless it succeeded)" };
        var logs = new Command("logs", """
            A build's log; -f follows it live until the build ends.

            Examples:
              platform builds logs site -f
              platform builds logs site 3
            """) { logApp, number, logFollow };
        logs.With(stdout, async (c, ct) =>
        {
            var app = c.Parse.GetValue(logApp)!;
            var n = c.Parse.GetValue(number) ?? await NewestAsync(c, app, ct);
            if (c.Parse.GetValue(logFollow))
            {
                await FollowAsync(c, app, n, rollout: false, ct);
                return;
            }
            using var response = await c.Api.SendRawAsync(() => new HttpRequestMessage(HttpMethod.Get, c.App(app) + $"/builds/{n}/log"), HttpCompletionOption.ResponseContentRead, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            foreach (var line in (text.EndsWith('\n') ? text[..^1] : text).Split('\n').Where(_ => text.Length > 0))
                c.Out.Out.WriteLine(Printable(line.TrimEnd('\r')));
        });

        var cancelApp = Commands.AppArgument();
        var cancelNumber = new Argument<int>("number") { Description = "The build" };
        var cancel = new Command("cancel", """
            Cancel a queued or running build.

            Example:
              platform builds cancel site 4
            """) { cancelApp, cancelNumber };
        cancel.With(stdout, async (c, ct) =>
        {
            var n = c.Parse.GetValue(cancelNumber);
            await c.Api.SendAsync(HttpMethod.Post, c.App(c.Parse.GetValue(cancelApp)!) + $"/builds/{n}/cancel", null, ct);
            c.Out.Say($"Build #{n} is being cancelled.", new { cancelled = n });
        });
        return new Command("builds", "An app's builds: list, start, logs (live), cancel.") { list, start, logs, cancel };
    }

    private static async Task<int> NewestAsync(Context c, string app, CancellationToken ct)
    {
        var first = Items(await c.Api.GetAsync(c.App(app) + "/builds", ct)).FirstOrDefault();
        return first.ValueKind == JsonValueKind.Object && int.TryParse(S(first, "number"), out var n) ? n
            : throw new CliException($"{app} has no builds yet.");
    }

    /// <summary>
    /// The build's log as Server-Sent Events: each line as it is written, then the <c>end</c> event with the build's
    /// state (a dropped stream resumes from the last byte offset). A build that did not succeed is exit 1; with
    /// <paramref name="rollout"/>, a successful one is followed into its rollout.
    /// </summary>
    public static async Task FollowAsync(Context c, string app, int number, bool rollout, CancellationToken ct)
    {
        string? lastId = null, state = null;
        for (var attempt = 0; state is null; attempt++)
        {
            try
            {
                using var response = await c.Api.SendRawAsync(() =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, c.App(app) + $"/builds/{number}/log");
                    request.Headers.Accept.ParseAdd("text/event-stream");
                    if (lastId is not null) request.Headers.TryAddWithoutValidation("Last-Event-ID", lastId);
                    return request;
                }, HttpCompletionOption.ResponseHeadersRead, ct);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
                string? ev = null;
                while (await reader.ReadLineAsync(ct) is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal)) lastId = line[4..];
                    else if (line.StartsWith("event: ", StringComparison.Ordinal)) ev = line[7..];
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        if (ev == "end") state = line[6..];
                        else if (c.Out.Json) c.Out.Out.WriteLine(JsonSerializer.Serialize(new { line = line[6..] }));
                        else c.Out.Out.WriteLine(Printable(line[6..]));
                        c.Out.Out.Flush();
                    }
                    else if (line.Length == 0) ev = null;
                }
            }
            catch (IOException) when (attempt < 5)
            {
                // The stream broke (an Api replica went away): resume where it stopped.
            }
            if (state is null && attempt >= 5) throw new CliException($"Lost the log of build #{number}; `platform builds logs {app} {number}` shows it.");
        }
        Console.Error.WriteLine($"Build #{number} {state}.");
        if (state != "Succeeded") throw new CliException($"Build #{number} of {app} ended {state}.");
        if (rollout) await AppCommands.FollowRolloutAsync(c, app, ct);
    }

    private static string Took(JsonElement b) =>
        S(b, "startedAt") is { } s && DateTimeOffset.TryParse(s, out var started)
            ? ((S(b, "finishedAt") is { } f && DateTimeOffset.TryParse(f, out var finished) ? finished : DateTimeOffset.UtcNow) - started) is var t
                ? t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:0}s" : ""
            : "";
}
