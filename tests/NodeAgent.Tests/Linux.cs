// The agent and its tests run on Linux only (runc, cgroups, name-spaces).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
