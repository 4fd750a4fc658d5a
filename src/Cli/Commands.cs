using System.CommandLine;
using System.Text.Json;
using static Platform.Cli.Output;

namespace Platform.Cli;

/// <summary>The command tree. Each command's description ends with examples, which <c>--help</c> shows.</summary>
public static class Commands
{
    // Options every command takes (recursive): where, which team and project, and the output form.
    public static readonly Option<bool> JsonOption = new("--json") { Description = "Print the Api's JSON instead of a table (for scripts)", Recursive = true };
    public static readonly Option<string?> TeamOption = new("--team", "-t") { Description = "The team (default: the one `platform target` set)", Recursive = true };
    public static readonly Option<string?> ProjectOption = new("--project", "-p") { Description = "The project (default: the one `platform target` set)", Recursive = true };
    public static readonly Option<string?> ApiOption = new("--api") { Description = "The Api's URL (default: the one signed in to, or PLATFORM_API)", Recursive = true };

    public static RootCommand Build(TextWriter stdout)
    {
        var root = new RootCommand("""
            Platform's command line: sign in once, then do from the terminal all a developer does in the Portal.

            Examples:
              platform login https://platform.example.com
              platform target --team acme --project web
              platform apps create shop --image acme/web/shop:1
              platform logs shop -f
            """);
        root.Options.Add(JsonOption);
        root.Options.Add(TeamOption);
        root.Options.Add(ProjectOption);
        root.Options.Add(ApiOption);
        foreach (var command in AuthCommands.All(stdout).Concat(AppCommands.All(stdout))
                     .Concat([BuildCommands.Builds(stdout), GitCommands.Git(stdout)]).Concat(TeamCommands.All(stdout))
                     .Append(CompletionCommand.Build(stdout)))
            root.Subcommands.Add(command);
        // Descriptions are written with their examples; a command list shows the first paragraph, the command's own
        // --help the examples after its options.
        var examples = new Dictionary<Command, string>();
        void Split(Command c)
        {
            if (c.Description is { } d && d.IndexOf("\n\nExample", StringComparison.Ordinal) is var at and > 0)
                (c.Description, examples[c]) = (d[..at].Replace("\n", " ", StringComparison.Ordinal), d[(at + 2)..]);
            foreach (var sub in c.Subcommands) Split(sub);
        }
        foreach (var c in root.Subcommands) Split(c);
        var help = root.Options.OfType<System.CommandLine.Help.HelpOption>().Single();
        help.Action = new ExamplesHelp((System.CommandLine.Help.HelpAction)help.Action!, examples, stdout);
        return root;
    }

    /// <summary>The default help, then the command's examples.</summary>
    internal sealed class ExamplesHelp(System.CommandLine.Help.HelpAction inner, Dictionary<Command, string> examples, TextWriter stdout)
        : System.CommandLine.Invocation.SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var code = inner.Invoke(parseResult);
            if (examples.TryGetValue(parseResult.CommandResult.Command, out var text)) stdout.WriteLine(text.TrimEnd() + Environment.NewLine);
            return code;
        }
    }

    /// <summary>What an action works with: the profile, the Api client, the output, the team and project it acts in.</summary>
    public sealed class Context(ParseResult parse, TextWriter stdout) : IDisposable
    {
        private ApiClient? _api;
        public Profile Profile { get; } = Config.Load();
        public Output Out { get; } = new(stdout, parse.GetValue(JsonOption));
        public ApiClient Api => _api ??= new ApiClient(Profile, parse.GetValue(ApiOption));
        public ParseResult Parse => parse;

        public string Team => parse.GetValue(TeamOption) ?? Profile.Team
            ?? throw new CliException("Which team? Give --team, or set one with `platform target --team <team>`.");
        public string Project => parse.GetValue(ProjectOption) ?? Profile.Project
            ?? throw new CliException("Which project? Give --project, or set one with `platform target --project <project>`.");

        public string Apps => $"api/v1/teams/{E(Team)}/projects/{E(Project)}/apps";
        public string App(string name) => $"{Apps}/{E(name)}";

        public void Dispose() => _api?.Dispose();
    }

    public static string E(string s) => Uri.EscapeDataString(s);

    /// <summary>An existing app's name, which the shell completes from the target project's apps.</summary>
    public static Argument<string> AppArgument()
    {
        var app = new Argument<string>("app") { Description = "The app's name" };
        app.CompletionSources.Add(context => AppNames(context.ParseResult));
        return app;
    }

    /// <summary>
    /// The apps of the project the command line names (or the target's), asked of the Api with the saved sign-in.
    /// Completion must never get in the way: no sign-in, no target, no answer within 3 s or any refusal offers nothing.
    /// </summary>
    private static IEnumerable<string> AppNames(ParseResult parse)
    {
        try
        {
            var profile = Config.Load();
            var team = parse.GetValue(TeamOption) ?? profile.Team;
            var project = parse.GetValue(ProjectOption) ?? profile.Project;
            if (team is null || project is null) return [];
            // An expired sign-in offers nothing rather than refreshing here (the next real command refreshes it).
            using var api = new ApiClient(profile, parse.GetValue(ApiOption)) { MayRefresh = false };
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            var page = api.GetAsync($"api/v1/teams/{E(team)}/projects/{E(project)}/apps?limit=200", limit.Token).GetAwaiter().GetResult();
            return Output.Items(page).Select(a => S(a, "name")).OfType<string>().ToList();
        }
#pragma warning disable CA1031 // completion must never fail the shell, whatever went wrong
        catch (Exception)
        {
            return [];
        }
#pragma warning restore CA1031
    }

    /// <summary>A command whose action gets a <see cref="Context"/>; returns 0 unless the action says otherwise.</summary>
    public static Command With(this Command command, TextWriter stdout, Func<Context, CancellationToken, Task> action)
    {
        command.SetAction(async (parse, ct) =>
        {
            using var context = new Context(parse, stdout);
            await action(context, ct);
            return 0;
        });
        return command;
    }

    public static string Ago(JsonElement e, string name) =>
        S(e, name) is { } text && DateTimeOffset.TryParse(text, out var at) ? Since(DateTimeOffset.UtcNow - at) : "";

    private static string Since(TimeSpan t) => t.TotalSeconds < 0 ? "now"
        : t.TotalMinutes < 1 ? $"{(int)t.TotalSeconds}s ago" : t.TotalHours < 1 ? $"{(int)t.TotalMinutes}m ago"
        : t.TotalDays < 1 ? $"{(int)t.TotalHours}h ago" : $"{(int)t.TotalDays}d ago";
}
