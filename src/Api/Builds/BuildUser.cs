using System.Globalization;
using Microsoft.Extensions.Options;
using Platform.Api.Infrastructure;
using Platform.Host.Processes;

namespace Platform.Api.Builds;

/// <summary>
/// The unprivileged account builds run as (<c>Platform:Builds:User</c>, default <c>platform-build</c>): buildah
/// runs rootless under it, so a RUN step's root is that account in a user name-space of its own (container id 0
/// is the account's uid, ids 1–65536 its subordinate range in /etc/subuid and /etc/subgid), and a runc or buildah
/// escape lands as that account: no capability on the host, no read of the database, the keys or the registry
/// (<see cref="DataFolderAccess"/> keeps them closed to others). The Api (root) makes the account and its ranges
/// at the first build when they are missing, as a system account without a shell or home.
/// </summary>
public sealed class BuildUser(IOptions<PlatformOptions> options, ILogger<BuildUser> log)
{
    /// <summary>The account's ids once it was made or found.</summary>
    public sealed record Identity(string Name, int Uid, int Gid);

    /// <summary>How many subordinate ids a build's user name-space maps (container ids 1–65536).</summary>
    public const int SubordinateIds = 65536;

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Identity? _identity;

    /// <summary>The account, made (with its subordinate ranges) when missing; throws <see cref="BuildFailure"/> saying what is wrong.</summary>
    public async Task<Identity> EnsureAsync(CancellationToken ct)
    {
        if (_identity is { } known) return known;
        await _gate.WaitAsync(ct);
        try
        {
            return _identity ??= await FindOrMakeAsync(ct);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Identity> FindOrMakeAsync(CancellationToken ct)
    {
        var o = options.Value.Builds;
        if (!File.Exists("/usr/bin/newuidmap") || !File.Exists("/usr/bin/newgidmap"))
            throw new BuildFailure("Builds run rootless and need newuidmap and newgidmap (Debian package uidmap) on this machine.");
        var identity = await LookUpAsync(o.User, ct);
        if (identity is null)
        {
            await RetryOnLockAsync(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", o.User], ct);
            identity = await LookUpAsync(o.User, ct) ?? throw new BuildFailure($"The build account {o.User} could not be made.");
            log.LogInformation("Made the build account {User} (uid {Uid})", o.User, identity.Uid);
        }
        if (identity.Uid == 0) throw new BuildFailure($"Platform:Builds:User {o.User} is root: builds need an unprivileged account.");
        foreach (var file in new[] { "/etc/subuid", "/etc/subgid" })
        {
            var ranges = Ranges(file);
            if (ranges.Any(r => (r.Owner == identity.Name || r.Owner == identity.Uid.ToString(CultureInfo.InvariantCulture)) && r.Count >= SubordinateIds))
                continue;
            var (start, end) = (o.SubordinateIdStart, o.SubordinateIdStart + SubordinateIds - 1L);
            if (ranges.FirstOrDefault(r => r.Start <= end && start < r.Start + r.Count) is { Owner: not null } taken)
                throw new BuildFailure($"Platform:Builds:SubordinateIdStart {start}: ids {start}–{end} overlap {taken.Owner}'s range in {file}; choose another start.");
            var flag = file == "/etc/subuid" ? "--add-subuids" : "--add-subgids";
            await RetryOnLockAsync(["usermod", flag, $"{start}-{end}", identity.Name], ct);
            log.LogInformation("Gave the build account {User} the subordinate ids {Start}-{End} in {File}", identity.Name, start, end, file);
        }
        return identity;
    }

    private static async Task<Identity?> LookUpAsync(string name, CancellationToken ct)
    {
        var r = await ProcessRunner.RunAsync("getent", ["passwd", name], ct);
        if (!r.Succeeded) return null;
        var fields = r.Stdout.Trim().Split(':');
        return fields.Length >= 4 && int.TryParse(fields[2], CultureInfo.InvariantCulture, out var uid) && int.TryParse(fields[3], CultureInfo.InvariantCulture, out var gid)
            ? new Identity(fields[0], uid, gid) : null;
    }

    /// <summary>useradd and usermod refuse while another process holds /etc/passwd's lock: try again for a while.</summary>
    private static async Task RetryOnLockAsync(IReadOnlyList<string> command, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var r = await ProcessRunner.RunAsync(command[0], command.Skip(1).ToList(), ct);
            if (r.Succeeded || (command[0] == "useradd" && r.ExitCode == 9)) return;   // 9: someone made it meanwhile
            if (attempt >= 20 || !r.Stderr.Contains("lock", StringComparison.OrdinalIgnoreCase))
                throw new BuildFailure($"{command[0]} failed for the build account: {r.Stderr.Trim()}");
            await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
        }
    }

    private static List<(string? Owner, long Start, long Count)> Ranges(string file)
    {
        if (!File.Exists(file)) return [];
        return File.ReadAllLines(file).Select(l => l.Split(':')).Where(f => f.Length == 3
                && long.TryParse(f[1], CultureInfo.InvariantCulture, out _) && long.TryParse(f[2], CultureInfo.InvariantCulture, out _))
            .Select(f => ((string?)f[0], long.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture))).ToList();
    }

    /// <summary>
    /// <paramref name="program"/> run as the account with only <paramref name="env"/> (and PATH) in its environment:
    /// the Api's own variables (a database password among them) never reach a process the account can read.
    /// With <paramref name="netns"/>, it runs in that network name-space (entered as root, before the ids drop).
    /// </summary>
    public static (string File, IReadOnlyList<string> Args) Command(Identity user, string program, IReadOnlyList<string> args,
        IReadOnlyDictionary<string, string?> env, string? netns = null)
    {
        List<string> line = [];
        if (netns is not null) line.AddRange(["--net=" + netns, "--", "setpriv"]);
        line.AddRange([$"--reuid={user.Uid}", $"--regid={user.Gid}", "--clear-groups", "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
        line.AddRange(env.Where(e => e.Value is not null).Select(e => $"{e.Key}={e.Value}"));
        line.Add(program);
        line.AddRange(args);
        return (netns is not null ? "nsenter" : "setpriv", line);
    }

    /// <summary>Hands <paramref name="path"/> and everything below it to the account (links themselves, never what they point to).</summary>
    public static Task HandOverAsync(Identity user, string path, CancellationToken ct) =>
        ProcessRunner.CheckedAsync("chown", ["-R", "-P", "-h", $"{user.Uid}:{user.Gid}", "--", path], ct);
}
