using System.Runtime.InteropServices;
using Platform.Host.Processes;
using Platform.NodeAgent.Images;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// Root file systems of instances: an overlay of the image's layers (read-only, shared) under a
/// private writable upper directory. Container root is an unprivileged host id range per project
/// and runc 1.1.5 cannot id-map mounts, so each layer is used through a copy whose owners are shifted
/// into that range (made once per layer and range, then shared by every instance of the project).
/// </summary>
public sealed partial class Rootfs(LayerStore layers, string root)
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(5);

    /// <summary>The layer <paramref name="digest"/> with every owner moved up by <paramref name="hostStart"/>.</summary>
    public async Task<string> ShiftedLayerAsync(string digest, uint hostStart, CancellationToken ct)
    {
        var source = layers.PathOf(digest);
        if (!Directory.Exists(source)) throw new InvalidOperationException($"layer {digest} is not unpacked");
        var target = Path.Combine(root, "shifted", hostStart.ToString(), Path.GetFileName(source));
        if (Directory.Exists(target)) return target;
        var work = target + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        // Root only, as the layer store is: overlay reaches its lower folders with the mounter's (root's) rights, and no
        // local user may reach the copies' files (a setuid file owned by a project's root id would hand them that id).
        File.SetUnixFileMode(Path.Combine(root, "shifted"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            // cp -a keeps modes, links, whiteout devices and the opaque xattrs; then shift every owner.
            await ProcessRunner.CheckedAsync("cp", ["-a", "--", source, work], ct, Slow);
            // Each entry as find prints it (NUL-separated, bytes kept as they are: a name need not be UTF-8), shifted
            // at once: memory stays flat whatever the number of files.
            Exception? failed = null;
            var shifted = await ProcessRunner.RunAsync(new ProcessSpec("find", [work, "-printf", "%U %G %p\\0"])
            {
                Timeout = Slow, Delimiter = '\0', OutputEncoding = System.Text.Encoding.Latin1, MaxCapture = 4096,
                Keep = _ => false,
                OnLine = (entry, stderr) =>
                {
                    if (stderr || failed is not null || entry.Length == 0) return;
                    var parts = entry.Split(' ', 3);
                    if (parts.Length != 3 || !uint.TryParse(parts[0], out var uid) || !uint.TryParse(parts[1], out var gid))
                    {
                        failed = new IOException($"layer {digest}: find printed '{entry}'");
                        return;
                    }
                    var path = System.Text.Encoding.Latin1.GetBytes(parts[2] + "\0");
                    if (lchown(path, uid + hostStart, gid + hostStart) != 0)
                        failed = new IOException($"layer {digest}: lchown '{parts[2]}' failed: errno {Marshal.GetLastPInvokeError()}");
                },
            }, ct);
            shifted.EnsureSuccess("find");
            if (failed is not null) throw failed;
            try
            {
                Directory.Move(work, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                NoFollow.RemoveTree(work);   // a concurrent start made it first
            }
            return target;
        }
        catch
        {
            if (Directory.Exists(work)) await ProcessRunner.RunAsync("rm", ["-rf", "--", work], CancellationToken.None, Slow);
            throw;
        }
    }

    /// <summary>Mounts the overlay for an instance at <c>{bundle}/rootfs</c>; layers are given bottom first, as in the manifest.</summary>
    public async Task<string> MountAsync(string bundle, IReadOnlyList<string> layerDigests, uint hostStart, CancellationToken ct)
    {
        var lowers = new List<string>();
        foreach (var digest in layerDigests)
            lowers.Add(await ShiftedLayerAsync(digest, hostStart, ct));
        lowers.Reverse();   // overlay wants the top layer first
        var upper = Path.Combine(bundle, "upper");
        var work = Path.Combine(bundle, "work");
        var rootfs = Path.Combine(bundle, "rootfs");
        foreach (var d in new[] { upper, work, rootfs }) Directory.CreateDirectory(d);
        foreach (var d in new[] { upper, rootfs })
            if (lchown(d, hostStart, hostStart) != 0) throw new IOException($"lchown '{d}' failed");
        if (await IsMountedAsync(rootfs, ct)) return rootfs;
        await ProcessRunner.CheckedAsync("mount", ["-t", "overlay", "overlay",
            "-o", $"lowerdir={string.Join(':', lowers)},upperdir={upper},workdir={work}", rootfs], ct);
        return rootfs;
    }

    public async Task UnmountAsync(string bundle, CancellationToken ct)
    {
        var rootfs = Path.Combine(bundle, "rootfs");
        if (await IsMountedAsync(rootfs, ct))
            await ProcessRunner.CheckedAsync("umount", [rootfs], ct);
    }

    public static async Task<bool> IsMountedAsync(string path, CancellationToken ct)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        return (await File.ReadAllLinesAsync("/proc/self/mounts", ct)).Any(l => l.Split(' ')[1] == full);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, uint owner, uint group);

    /// <summary>lchown with the path as raw bytes (NUL-terminated), for names that are not UTF-8.</summary>
    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true)]
    private static partial int lchown(byte[] path, uint owner, uint group);
}
