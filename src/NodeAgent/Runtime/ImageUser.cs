namespace Platform.NodeAgent.Runtime;

/// <summary>An image's <c>User</c> as numeric ids: "", "uid", "uid:gid", or names from the image's own /etc/passwd and /etc/group.</summary>
public static class ImageUser
{
    public static (uint Uid, uint Gid) Resolve(string user, string rootfs, uint idRangeSize)
    {
        if (string.IsNullOrEmpty(user)) return (0, 0);
        var parts = user.Split(':', 2);
        var uid = Lookup(rootfs, parts[0], "passwd") ?? throw new InvalidOperationException($"the image's user '{parts[0]}' is not in its /etc/passwd");
        uint gid;
        if (parts.Length == 2) gid = Lookup(rootfs, parts[1], "group") ?? throw new InvalidOperationException($"the image's group '{parts[1]}' is not in its /etc/group");
        else if (uint.TryParse(parts[0], out _)) gid = uid;
        else gid = Lines(rootfs, "passwd").Select(l => l.Split(':')).FirstOrDefault(f => f.Length > 3 && f[0] == parts[0]) is { } line
                   && uint.TryParse(line[3], out var g) ? g : uid;
        if (uid >= idRangeSize || gid >= idRangeSize)
            throw new InvalidOperationException($"the image's user {uid}:{gid} is outside the container's id range (0–{idRangeSize - 1})");
        return (uid, gid);
    }

    private static uint? Lookup(string rootfs, string name, string file)
    {
        if (uint.TryParse(name, out var n)) return n;
        foreach (var line in Lines(rootfs, file))
        {
            var f = line.Split(':');
            if (f.Length > 2 && f[0] == name && uint.TryParse(f[2], out var id)) return id;
        }
        return null;
    }

    /// <summary>The image's own file only (at most 10,000 lines): never through a link that could lead out of the root.</summary>
    private static IEnumerable<string> Lines(string rootfs, string file)
    {
        var etc = Path.Combine(rootfs, "etc");
        var path = Path.Combine(etc, file);
        if (!File.Exists(path) || new FileInfo(path).LinkTarget is not null || new FileInfo(etc).LinkTarget is not null) return [];
        return File.ReadLines(path).Take(10_000);
    }
}
