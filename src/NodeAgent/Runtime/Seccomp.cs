using System.Text.Json.Nodes;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Turns a seccomp profile in Docker's format (containers-common's
/// <c>/usr/share/containers/seccomp.json</c>, the default profile Docker and Podman apply) into the
/// OCI runtime spec's <c>linux.seccomp</c> for one architecture and one capability set: rules whose
/// <c>includes</c>/<c>excludes</c> (architectures, capabilities) do not fit are dropped, as Docker does.
/// </summary>
public static class Seccomp
{
    public const string DefaultProfilePath = "/usr/share/containers/seccomp.json";

    private static readonly Dictionary<string, string[]> OciArchitectures = new()
    {
        ["amd64"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        ["arm64"] = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    };

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
            ["architectures"] = new JsonArray(OciArchitectures[arch].Select(a => (JsonNode)a).ToArray()),
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
