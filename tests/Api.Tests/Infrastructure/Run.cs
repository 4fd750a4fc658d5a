using Platform.NodeAgent.Runtime;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]   // these tests drive Linux tools (skopeo, buildah, runc) as root

namespace Platform.Api.Tests.Infrastructure;

/// <summary>Runs a real tool (skopeo, buildah, git…) through the agent's <see cref="ProcessRunner"/>, with a test's defaults.</summary>
public static class Run
{
    public static Task<ProcessRunner.Result> ToolAsync(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync(file, args, timeout ?? TimeSpan.FromMinutes(3), CancellationToken.None, env);

    public static ProcessRunner.Result EnsureSuccess(this ProcessRunner.Result result, string what) =>
        result.ExitCode == 0 ? result : throw new InvalidOperationException($"{what} exited with {result.ExitCode}: {result.Stderr}\n{result.Stdout}");
}
