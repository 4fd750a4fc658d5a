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
