using Platform.NodeAgent.Runtime;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]   // these tests drive Linux tools (skopeo, buildah, runc) as root

namespace Platform.Api.Tests.Infrastructure;

/// <summary>Runs a real tool (skopeo, buildah, git…) through the agent's <see cref="ProcessRunner"/>, with a test's defaults.</summary>
public static class Run
{
    /// <summary>A loopback port nothing listens on now, for a process the test starts.</summary>
    public static int FreePort()
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        s.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static Task<ProcessRunner.Result> ToolAsync(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync(file, args, timeout ?? TimeSpan.FromMinutes(3), CancellationToken.None, env);

    /// <summary>git with its own HOME, no prompts and a fixed identity (in <paramref name="cwd"/> when given).</summary>
    public static Task<ProcessRunner.Result> GitAsync(string home, string? cwd, string[] args, TimeSpan? timeout = null) =>
        ToolAsync("git", cwd is null ? args : ["-C", cwd, .. args], new Dictionary<string, string>
        {
            ["HOME"] = home, ["GIT_TERMINAL_PROMPT"] = "0", ["GIT_CONFIG_NOSYSTEM"] = "1",
            ["GIT_AUTHOR_NAME"] = "Dev", ["GIT_AUTHOR_EMAIL"] = "dev@example.com", ["GIT_COMMITTER_NAME"] = "Dev", ["GIT_COMMITTER_EMAIL"] = "dev@example.com",
        }, timeout ?? TimeSpan.FromMinutes(1));

    public static ProcessRunner.Result EnsureSuccess(this ProcessRunner.Result result, string what) =>
        result.ExitCode == 0 ? result : throw new InvalidOperationException($"{what} exited with {result.ExitCode}: {result.Stderr}\n{result.Stdout}");
}
