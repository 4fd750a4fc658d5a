using System.Diagnostics;

namespace Platform.Api.Tests.Cli;

/// <summary>Runs the <c>platform</c> tool the solution built as a process, with a home (and so a profile file) of its own.</summary>
public sealed class CliRunner(string home)
{
    /// <summary>src/Cli's output beside this test assembly's configuration.</summary>
    public static readonly string Tool = Path.GetFullPath(AppContext.BaseDirectory.Replace(
        $"{Path.DirectorySeparatorChar}tests{Path.DirectorySeparatorChar}Api.Tests{Path.DirectorySeparatorChar}",
        $"{Path.DirectorySeparatorChar}src{Path.DirectorySeparatorChar}Cli{Path.DirectorySeparatorChar}") + "platform.dll");

    public string Home => home;

    public string ConfigFile => Path.Combine(home, "config", "platform", "config.json");

    public ProcessStartInfo Start(string[] args, IReadOnlyDictionary<string, string>? env = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        info.ArgumentList.Add(Tool);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["HOME"] = home;
        info.Environment["XDG_CONFIG_HOME"] = Path.Combine(home, "config");
        info.Environment.Remove("PLATFORM_TOKEN");
        info.Environment.Remove("PLATFORM_API");
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) info.Environment[k] = v;
        return info;
    }

    public async Task<(int Code, string Out, string Err)> RunAsync(string[] args, IReadOnlyDictionary<string, string>? env = null, string? stdin = null, string? cwd = null,
        int seconds = 60)
    {
        var info = Start(args, env);
        if (cwd is not null) info.WorkingDirectory = cwd;
        using var p = Process.Start(info)!;
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        await p.WaitForExitAsync(guard.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>git as a developer runs it beside the CLI (same home), in <paramref name="cwd"/>, never prompting (a missing credential fails).</summary>
    public async Task<(int Code, string Out)> GitAsync(string cwd, params string[] args)
    {
        var info = new ProcessStartInfo("git") { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["HOME"] = home;
        info.Environment["XDG_CONFIG_HOME"] = Path.Combine(home, "config");
        info.Environment["GIT_TERMINAL_PROMPT"] = "0";
        info.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        info.Environment.Remove("PLATFORM_TOKEN");
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await output + await error);
    }
}
