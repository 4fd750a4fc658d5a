using System.Net;

namespace Platform.Api.Builds;

/// <summary>
/// Pull-through of bases from the registries an operator listed (<c>Platform:Builds:UpstreamRegistries</c>): before
/// buildah runs, the Api copies the upstream image, without any credential of the platform's, into the platform's
/// registry under <see cref="DockerfileBases.CachePrefix"/>, and the Dockerfile names that copy. So buildah pulls
/// only from the platform's registry, later builds and nodes use the copy, and a build still works from the copy
/// when the upstream is unreachable. The copy is pushed with the build's upstream-cache credential, which opens
/// nothing but those copies; buildah never holds it.
/// </summary>
internal static class UpstreamCache
{
    public static async Task RefreshAsync(BuildLog output, BuildCgroup cgroup, BuildWorkspace workspace, (string Source, string Cache) image,
        string credential, CancellationToken ct)
    {
        var host = image.Source[..image.Source.IndexOf('/')];
        // Plain HTTP only for a registry on this machine's loopback (as the platform's own); anything else is verified TLS.
        var name = host.Contains(':') ? host[..host.LastIndexOf(':')] : host;
        var tls = name == "localhost" || IPAddress.TryParse(name, out var ip) && IPAddress.IsLoopback(ip) ? "false" : "true";
        try
        {
            await BuildStep.RunAsync(output, cgroup, "skopeo", ["copy", "--quiet", "--src-no-creds", "--src-tls-verify=" + tls, "--dest-tls-verify=false",
                "--dest-creds", "build:" + credential, "docker://" + image.Source, "docker://" + image.Cache], workspace.AuthEnv, ct);
            output.Say($"cached {image.Source} in the platform's registry");
        }
        catch (BuildFailure f)
        {
            // Unreachable or gone upstream: the copy cached by an earlier build serves; without one buildah says the base is missing.
            output.Say($"{image.Source} could not be fetched from its registry ({f.Message}); building from the platform's cached copy");
        }
    }
}
