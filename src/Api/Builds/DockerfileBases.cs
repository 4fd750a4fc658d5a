using System.Text;
using System.Text.RegularExpressions;

namespace Platform.Api.Builds;

/// <summary>
/// Every image a Dockerfile makes buildah pull — <c>FROM</c>, <c>COPY/ADD --from=</c>, <c>RUN --mount=…,from=</c> —
/// checked and spelled out before buildah sees it, so a build pulls only from the platform's registry or from an
/// upstream an operator listed. Names without a registry (<c>busybox</c>, <c>acme/web/base</c>) mean the platform's
/// registry (<c>library/</c> for one word); <c>scratch</c>, earlier stages (by name or index) and <c>--platform</c>
/// stay as written. A name given through a variable is resolved from the global <c>ARG</c> defaults (the platform
/// passes no build arguments) or refused, as is any other registry: what the platform cannot read, it does not
/// let buildah pull. ADD of a URL is refused too (buildah would fetch it from the Api's network). Line continuations, comments and the <c>escape</c> directive are read as buildah reads them;
/// a rewritten instruction keeps its first line and leaves the rest of its lines empty, so line numbers hold.
/// </summary>
public static partial class DockerfileBases
{
    /// <summary>
    /// The rewritten Dockerfile, or every reason it is refused (one per line, naming its line), and the bases from
    /// upstream registries with the platform-registry name of their cached copy (what the Dockerfile now names).
    /// </summary>
    public sealed record Result(string Text, IReadOnlyList<string> Problems, IReadOnlyList<(string Source, string Cache)> Upstream)
    {
        /// <summary>Every image the rewritten Dockerfile names, as buildah is to pull it before <c>bud</c> (which pulls nothing itself).</summary>
        public IReadOnlyList<Pull> Pulls { get; init; } = [];
    }

    /// <summary>One image to pull, and the platform its FROM asks for (null: this machine's, also for a platform given through a variable).</summary>
    public sealed record Pull(string Image, string? Platform);

    /// <summary>Where the platform's registry keeps copies of upstream bases: <c>library/upstream/{host-port}/…</c>.</summary>
    public const string CachePrefix = "library/upstream/";

    public static Result Rewrite(string dockerfile, string registry, IReadOnlyCollection<string> upstreams)
    {
        var lines = dockerfile.Replace("\r\n", "\n").Split('\n');
        var escape = EscapeOf(lines);
        var problems = new List<string>();
        var upstream = new List<(string Source, string Cache)>();
        var pulls = new List<Pull>();
        var stages = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var globalArgs = new Dictionary<string, string>(StringComparer.Ordinal);
        var stageCount = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var first = i;
            if (IsBlankOrComment(lines[i])) continue;
            // One instruction: its lines up to the one that does not end in the escape character (comments inside are dropped).
            var text = new StringBuilder();
            var line = lines[i];
            while (EndsWithEscape(line, escape) && i + 1 < lines.Length)
            {
                text.Append(line.TrimEnd()[..^1]);
                do i++; while (i + 1 < lines.Length && IsBlankOrComment(lines[i]));
                line = lines[i];
            }
            text.Append(line);
            var joined = text.ToString();
            var words = Words().Matches(joined).ToList();
            if (words.Count == 0) continue;
            var keyword = words[0].Value.ToUpperInvariant();
            var edits = new List<(int Index, int Length, string Value)>();
            var where = $"Dockerfile line {first + 1}";
            switch (keyword)
            {
                case "ARG" when stageCount == 0:
                    foreach (var arg in words.Skip(1))
                        if (arg.Value.Split('=', 2) is [var name, var value]) globalArgs[name] = value.Trim('"');
                    break;
                case "FROM":
                {
                    var index = words.FindIndex(1, w => !w.Value.StartsWith("--", StringComparison.Ordinal));
                    if (index < 0) break;
                    var image = words[index].Value;
                    if (!image.Equals("scratch", StringComparison.OrdinalIgnoreCase) && !stages.Contains(image)
                        && Resolve(image, globalArgs, registry, upstreams, where, problems, upstream) is { } resolved)
                    {
                        if (resolved != image) edits.Add((words[index].Index, image.Length, resolved));
                        var platform = words.Take(index).Select(w => w.Value).FirstOrDefault(w => w.StartsWith("--platform=", StringComparison.OrdinalIgnoreCase))?["--platform=".Length..].Trim('"');
                        pulls.Add(new Pull(resolved, platform is null || platform.Contains('$') ? null : platform));
                    }
                    if (words.Count > index + 2 && words[index + 1].Value.Equals("AS", StringComparison.OrdinalIgnoreCase)) stages.Add(words[index + 2].Value);
                    stageCount++;
                    break;
                }
                case "COPY" or "ADD" or "RUN":
                    for (var w = 1; w < words.Count && words[w].Value.StartsWith("--", StringComparison.Ordinal); w++)
                    {
                        var from = (keyword == "RUN" ? MountFrom() : FromFlag()).Match(words[w].Value);
                        if (!from.Success) continue;
                        var group = from.Groups["image"];
                        var value = group.Value.Trim('"');
                        if (stages.Contains(value) || value.All(char.IsAsciiDigit)) continue;
                        if (Resolve(value, globalArgs, registry, upstreams, where, problems, upstream) is not { } resolved) continue;
                        if (resolved != value) edits.Add((words[w].Index + group.Index, group.Length, resolved));
                        pulls.Add(new Pull(resolved, null));
                    }
                    // buildah fetches ADD's URLs itself, from the Api's machine and network (its services, PostgreSQL, the
                    // metadata address), not from the build network the RUN steps are confined to.
                    if (keyword == "ADD" && words.Skip(1).Any(w => !w.Value.StartsWith("--", StringComparison.Ordinal)
                        && (w.Value.Contains("://", StringComparison.Ordinal) || w.Value.TrimStart('[', '"').StartsWith("git@", StringComparison.Ordinal))))
                        problems.Add($"{where}: ADD may not fetch URLs (buildah would fetch them from the platform's own network): download in a RUN step, which runs in the build network.");
                    break;
                case "ONBUILD" when words.Skip(1).Any(w => FromFlag().IsMatch(w.Value) || MountFrom().IsMatch(w.Value)):
                    problems.Add($"{where}: ONBUILD may not name images (it would pull them in the builds of others).");
                    break;
            }
            if (edits.Count == 0) continue;
            foreach (var (index, length, value) in edits.OrderByDescending(e => e.Index))
                joined = joined[..index] + value + joined[(index + length)..];
            lines[first] = joined;
            for (var j = first + 1; j <= i; j++) lines[j] = "";
        }
        return new Result(string.Join('\n', lines), problems, upstream.Distinct().ToList()) { Pulls = pulls.Distinct().ToList() };
    }

    /// <summary>The image as buildah should pull it, or null (a reason added) when the build may not pull it.</summary>
    private static string? Resolve(string image, Dictionary<string, string> args, string registry, IReadOnlyCollection<string> upstreams,
        string where, List<string> problems, List<(string Source, string Cache)> upstream)
    {
        var expanded = Variable().Replace(image, m => args.TryGetValue(m.Groups["a"].Success ? m.Groups["a"].Value : m.Groups["b"].Value, out var v) ? v : m.Value);
        if (expanded.Contains('$'))
        {
            problems.Add($"{where}: the image '{image}' is named through a variable with no default: name the image itself.");
            return null;
        }
        if (!Reference().IsMatch(expanded))
        {
            problems.Add($"{where}: '{expanded}' is not an image name.");
            return null;
        }
        var slash = expanded.IndexOf('/');
        var head = slash < 0 ? "" : expanded[..slash];
        if (!IsRegistryHost(head)) return slash < 0 ? $"{registry}/library/{expanded}" : $"{registry}/{expanded}";
        if (head.Equals(registry, StringComparison.OrdinalIgnoreCase)) return expanded;
        if (upstreams.Contains(head, StringComparer.OrdinalIgnoreCase))
        {
            // Pull-through: buildah and nodes use the platform's copy; the build refreshes it from upstream first.
            var cache = $"{registry}/{CachePrefix}{head.ToLowerInvariant().Replace(':', '-')}/{expanded[(slash + 1)..]}";
            upstream.Add((expanded, cache));
            return cache;
        }
        problems.Add($"{where}: '{expanded}' is in the registry {head}, which builds may not pull from: use the platform's registry "
            + "(library/… or your team's repositories), or ask an operator to list it in Platform:Builds:UpstreamRegistries.");
        return null;
    }

    /// <summary>Whether <paramref name="host"/> is how an image reference names a registry (a dot, a port or localhost).</summary>
    public static bool IsRegistryHost(string host) =>
        RegistryHostName().IsMatch(host) && (host.Contains('.') || host.Contains(':') || host == "localhost");

    /// <summary>The escape character a leading <c># escape=</c> directive sets (parser directives come before anything else).</summary>
    private static char EscapeOf(string[] lines)
    {
        foreach (var line in lines)
        {
            if (Directive().Match(line) is not { Success: true } d) break;
            if (d.Groups["key"].Value.Equals("escape", StringComparison.OrdinalIgnoreCase) && d.Groups["value"].Value is "`" or "\\")
                return d.Groups["value"].Value[0];
        }
        return '\\';
    }

    private static bool IsBlankOrComment(string line) => line.TrimStart() is var t && (t.Length == 0 || t[0] == '#');

    private static bool EndsWithEscape(string line, char escape) => line.TrimEnd() is { Length: > 0 } t && t[^1] == escape;

    [GeneratedRegex(@"\S+")]
    private static partial Regex Words();

    [GeneratedRegex(@"^--from=(?<image>.+)$", RegexOptions.IgnoreCase)]
    private static partial Regex FromFlag();

    [GeneratedRegex(@"^--mount=(?:.*,)?from=(?<image>[^,]+)", RegexOptions.IgnoreCase)]
    private static partial Regex MountFrom();

    [GeneratedRegex(@"\$\{(?<a>[A-Za-z_][A-Za-z0-9_]*)\}|\$(?<b>[A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex Variable();

    /// <summary>A reference as the distribution spec spells it: host[:port]/path[:tag][@digest], lower-case path components.</summary>
    [GeneratedRegex(@"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?\z")]
    private static partial Regex Reference();

    [GeneratedRegex(@"^[A-Za-z0-9.-]+(?::\d{1,5})?\z")]
    private static partial Regex RegistryHostName();

    [GeneratedRegex(@"^#\s*(?<key>[A-Za-z]+)\s*=\s*(?<value>\S+)\s*$")]
    private static partial Regex Directive();
}
