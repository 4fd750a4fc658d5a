using System.Text.Json.Nodes;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Turns a seccomp profile in Docker's format (containers-common's
/// <c>/usr/share/containers/seccomp.json</c>, the default profile Docker and Podman apply) into the
/// OCI runtime spec's <c>linux.seccomp</c> for one architecture and one capability set: rules whose
/// <c>includes</c>/<c>excludes</c> (architectures, capabilities) do not fit are dropped, as Docker does.
/// Seccomp fails closed (<see cref="Load"/>): the host's profile is preferred when it is there, the agent's
/// embedded copy of it (converted for amd64 and <see cref="RuntimeSpec.Capabilities"/>) is used when it is
/// missing or unreadable, and a profile that is there but broken stops the agent instead of being skipped.
/// </summary>
public static class Seccomp
{
    public const string DefaultProfilePath = "/usr/share/containers/seccomp.json";
    private const string EmbeddedResource = "seccomp-default-amd64.json";

    /// <summary>
    /// The profile every container gets: <paramref name="hostProfile"/> (Docker's format) converted, or the
    /// embedded default when that file is missing or unreadable. Throws, naming the file, when it is there
    /// but not a profile: never null, so no container runs without seccomp.
    /// </summary>
    public static JsonObject Load(string hostProfile)
    {
        string text;
        try { text = File.ReadAllText(hostProfile); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Embedded(); }
        try
        {
            var docker = JsonNode.Parse(text) as JsonObject ?? throw new InvalidOperationException("not a JSON object");
            return Checked(ToOci(docker, Architecture(), RuntimeSpec.Capabilities.ToHashSet()));
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException or FormatException or KeyNotFoundException)
        {
            throw new InvalidOperationException(
                $"The seccomp profile {hostProfile} is not a valid Docker-format profile ({e.Message}). Fix or remove it (without it the "
                + "agent uses its embedded default profile); containers are never started without seccomp.", e);
        }
    }

    /// <summary>The embedded default profile (amd64; other architectures need the host's file).</summary>
    public static JsonObject Embedded()
    {
        if (Architecture() != "amd64")
            throw new InvalidOperationException($"The embedded seccomp profile is for amd64; on {Architecture()} install {DefaultProfilePath} (containers-common).");
        using var stream = typeof(Seccomp).Assembly.GetManifestResourceStream(EmbeddedResource)
            ?? throw new InvalidOperationException($"The agent was built without its seccomp profile ({EmbeddedResource}).");
        return Checked(JsonNode.Parse(stream)!.AsObject());
    }

    private static string Architecture() => System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        var other => other.ToString().ToLowerInvariant(),
    };

    /// <summary>A profile that would allow everything, or nothing useful, is as bad as none.</summary>
    private static JsonObject Checked(JsonObject oci)
    {
        var action = oci["defaultAction"]?.GetValue<string>();
        if (action is null or "SCMP_ACT_ALLOW" or "SCMP_ACT_LOG")
            throw new InvalidOperationException($"its default action is {action ?? "missing"}: it would allow every system call it does not list");
        if (oci["syscalls"] is not JsonArray { Count: > 0 })
            throw new InvalidOperationException("it lists no system calls");
        return oci;
    }

    private static readonly Dictionary<string, string[]> OciArchitectures = new()
    {
        ["amd64"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ["arm64"] = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    };

    private static string[] OciArchitecturesOf(string arch) =>
        OciArchitectures.TryGetValue(arch, out var a) ? a : throw new InvalidOperationException($"no seccomp architectures known for {arch}");

    public static JsonObject ToOci(JsonObject docker, string arch, IReadOnlySet<string> capabilities)
    {
        var syscalls = new JsonArray();
        foreach (var rule in docker["syscalls"]!.AsArray().Select(r => r!.AsObject()))
        {
            if (!Applies(rule["includes"] as JsonObject, arch, capabilities, include: true)) continue;
            if (!Applies(rule["excludes"] as JsonObject, arch, capabilities, include: false)) continue;
            var oci = new JsonObject
            {
                ["names"] = rule["names"]!.DeepClone(),
                ["action"] = rule["action"]!.GetValue<string>(),
            };
            if (rule["errnoRet"] is { } errno) oci["errnoRet"] = errno.GetValue<int>();
            if (rule["args"] is JsonArray { Count: > 0 } args)
                oci["args"] = new JsonArray(args.Select(a => (JsonNode)new JsonObject
                {
                    ["index"] = a!["index"]!.GetValue<int>(),
                    ["value"] = a["value"]!.GetValue<ulong>(),
                    ["valueTwo"] = a["valueTwo"]?.GetValue<ulong>() ?? 0,
                    ["op"] = a["op"]!.GetValue<string>(),
                }).ToArray());
            syscalls.Add(oci);
        }
        var result = new JsonObject
        {
            ["defaultAction"] = docker["defaultAction"]!.GetValue<string>(),
            ["architectures"] = new JsonArray(OciArchitecturesOf(arch).Select(a => (JsonNode)a).ToArray()),
            ["syscalls"] = syscalls,
        };
        if (docker["defaultErrnoRet"] is { } ret) result["defaultErrnoRet"] = ret.GetValue<int>();
        return result;
    }

    /// <summary>includes: every listed condition must hold; excludes: none may hold.</summary>
    private static bool Applies(JsonObject? conditions, string arch, IReadOnlySet<string> capabilities, bool include)
    {
        if (conditions is null || conditions.Count == 0) return true;
        var arches = conditions["arches"] is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToList() : null;
        var caps = conditions["caps"] is JsonArray c ? c.Select(x => x!.GetValue<string>()).ToList() : null;
        if (include)
            return (arches is null || arches.Contains(arch)) && (caps is null || caps.All(capabilities.Contains));
        return !(arches is not null && arches.Contains(arch)) && !(caps is not null && caps.Any(capabilities.Contains));
    }
}
