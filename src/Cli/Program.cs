using System.CommandLine;
using Platform.Cli;

// platform: the command line of Platform, on its REST API only (docs/cli.md). Exit codes: 0 done, 1 refused or
// failed (the Api's problem in words on stderr), 2 a usage error (the command line itself is wrong).
var root = Commands.Build(Console.Out);
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0 && parsed.Action is not Commands.ExamplesHelp)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine(error.Message);
    var path = new List<string>();
    for (var r = parsed.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult) path.Insert(0, r.Command.Name);
    Console.Error.WriteLine($"See `{string.Join(' ', path)} --help`.");
    return 2;
}
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cancel.Token);
}
catch (CliException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    return 130;
}
catch (Exception e) when (e is HttpRequestException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException
                              or InvalidOperationException or TaskCanceledException or UriFormatException or FormatException)
{
    // What went wrong in words, without a stack trace: the Api unreachable or answering something unexpected, a file
    // that cannot be read or written.
    Console.Error.WriteLine(e switch
    {
        HttpRequestException => $"Cannot reach the Api: {e.Message}",
        TaskCanceledException => "The Api did not answer in time.",
        System.Text.Json.JsonException => $"The Api answered something that is not the JSON expected ({e.Message}); is the URL a Platform Api?",
        _ => e.Message,
    });
    return 1;
}
