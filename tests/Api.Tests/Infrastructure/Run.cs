using Platform.Host.Processes;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]   // these tests drive Linux tools (skopeo, buildah, runc) as root

namespace Platform.Api.Tests.Infrastructure;

/// <summary>Runs a real tool (skopeo, buildah, git…) through the platform's <see cref="ProcessRunner"/>, with a test's defaults.</summary>
public static class Run
{
    /// <summary>A loopback port nothing listens on now, for a process the test starts.</summary>
    public static int FreePort()
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        s.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static Task<ProcessResult> ToolAsync(string file, IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync(file, args, CancellationToken.None, timeout ?? TimeSpan.FromMinutes(3), env?.ToDictionary(e => e.Key, e => (string?)e.Value));

    /// <summary>git with its own HOME, no prompts and a fixed identity (in <paramref name="cwd"/> when given).</summary>
    public static Task<ProcessResult> GitAsync(string home, string? cwd, string[] args, TimeSpan? timeout = null) =>
        ToolAsync("git", cwd is null ? args : ["-C", cwd, .. args], new Dictionary<string, string>
        {
            ["HOME"] = home, ["GIT_TERMINAL_PROMPT"] = "0", ["GIT_CONFIG_NOSYSTEM"] = "1",
            ["GIT_AUTHOR_NAME"] = "Dev", ["GIT_AUTHOR_EMAIL"] = "dev@example.com", ["GIT_COMMITTER_NAME"] = "Dev", ["GIT_COMMITTER_EMAIL"] = "dev@example.com",
        }, timeout ?? TimeSpan.FromMinutes(1));
}
