using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Platform.NodeAgent.Images;

/// <summary>
/// File-system calls relative to directory descriptors that never follow a symbolic link: every path is
/// resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) one component at a
/// time, files are made with O_CREAT | O_EXCL | O_NOFOLLOW, and modes and owners are set on descriptors.
/// A link an earlier layer entry planted can therefore never redirect a later write, mode or owner change
/// to a host path, whatever the order of the entries (the check-then-use races of path strings are gone).
/// Linux x86-64 only, as the agent is (kernel 5.6 or later for openat2).
/// </summary>
internal static partial class NoFollow
{
    public const int ENOENT = 2, EEXIST = 17, ENOTDIR = 20, ELOOP = 40, EXDEV = 18;
    public const uint S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;

    private const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000,
        O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    private const ulong RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08;
    private const ulong Beneath = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;
    private const long SYS_openat2 = 437;

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    /// <summary>What fstatat tells about an entry (the link itself for a link).</summary>
    public readonly record struct Status(uint Mode, ulong Device)
    {
        public uint Type => Mode & S_IFMT;
    }

    /// <summary>The calling thread's errno, as an exception naming what failed; <see cref="IOException.HResult"/> is the errno.</summary>
    public sealed class Failure(string what, int errno) : IOException($"{what} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno)
    {
        public int Errno { get; } = errno;
    }

    /// <summary>"" as a C string: with AT_EMPTY_PATH, the descriptor itself.</summary>
    private static readonly byte[] EmptyPath = [0];

    private static Failure Fail(string what) => new(what, Marshal.GetLastPInvokeError());

    private static void Check(int rc, string what)
    {
        if (rc != 0) throw Fail(what);
    }

    /// <summary>Opens a directory by its absolute path for use as a root; the path itself must not be a link.</summary>
    public static SafeFileHandle OpenRoot(string path)
    {
        var fd = openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        return fd < 0 ? throw Fail($"open '{path}'") : new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// Opens the directory <paramref name="name"/> (one component) below <paramref name="dir"/>: ELOOP when it is a
    /// link, ENOTDIR when it is something else, ENOENT when missing.
    /// </summary>
    public static SafeFileHandle OpenDirectory(SafeFileHandle dir, string name) =>
        Open2(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0, $"open directory '{name}'");

    /// <summary>Opens <paramref name="path"/> (several components) below <paramref name="dir"/> as an O_PATH handle, no link followed on the way.</summary>
    public static SafeFileHandle OpenPathBeneath(SafeFileHandle dir, string path) =>
        Open2(dir, path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, $"open '{path}'");

    /// <summary>A new file, refused when anything (a link included) already has the name.</summary>
    public static SafeFileHandle CreateFile(SafeFileHandle dir, string name) =>
        Open2(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0b110_000_000, $"create '{name}'");

    /// <summary>Opens a FIFO without blocking (no writer needed) so its mode and owner can be set on a descriptor.</summary>
    public static SafeFileHandle OpenFifo(SafeFileHandle dir, string name) =>
        Open2(dir, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0, $"open fifo '{name}'");

    private static SafeFileHandle Open2(SafeFileHandle dir, string path, int flags, uint mode, string what)
    {
        var how = new OpenHow { Flags = (ulong)flags, Mode = mode, Resolve = Beneath };
        var fd = (int)openat2(SYS_openat2, (int)dir.DangerousGetHandle(), path, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        return fd < 0 ? throw Fail(what) : new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>lstat of one entry of <paramref name="dir"/>; null when there is none.</summary>
    public static Status? StatOf(SafeFileHandle dir, string name) => StatOf(dir, System.Text.Encoding.UTF8.GetBytes(name + "\0"));

    private static Status? StatOf(SafeFileHandle dir, byte[] name)
    {
        var buffer = new byte[256];   // struct stat is 144 bytes on x86-64
        if (fstatat(dir, name, buffer, AT_SYMLINK_NOFOLLOW) == 0) return Parse(buffer);
        var errno = Marshal.GetLastPInvokeError();
        return errno == ENOENT ? null : throw new Failure($"stat '{Display(name)}'", errno);
    }

    /// <summary>fstat of an open descriptor (an O_PATH one included).</summary>
    public static Status StatOf(SafeFileHandle fd)
    {
        var buffer = new byte[256];
        Check(fstatat(fd, EmptyPath, buffer, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), "fstat");
        return Parse(buffer);
    }

    private static Status Parse(byte[] stat) => new(BitConverter.ToUInt32(stat, 24), BitConverter.ToUInt64(stat, 0));

    /// <summary>Makes a directory unless one is there; true when it made it.</summary>
    public static bool MakeDirectory(SafeFileHandle dir, string name, uint mode)
    {
        if (mkdirat(dir, name, mode) == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        return errno == EEXIST ? false : throw new Failure($"mkdir '{name}'", errno);
    }

    public static void MakeSymlink(SafeFileHandle dir, string name, string target) => Check(symlinkat(target, dir, name), $"symlink '{name}'");

    /// <summary>An overlay whiteout (character device 0:0) or a FIFO, by mknodat.</summary>
    public static void MakeNode(SafeFileHandle dir, string name, uint mode) => Check(mknodat(dir, name, mode, 0), $"mknod '{name}'");

    /// <summary>A hard link to the file <paramref name="target"/> is open on: no path is looked up again (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, as root has).</summary>
    public static void HardLink(SafeFileHandle target, SafeFileHandle dir, string name) =>
        Check(linkat(target, EmptyPath, dir, name, AT_EMPTY_PATH), $"link '{name}'");

    public static void ChangeMode(SafeFileHandle fd, uint mode) => Check(fchmod(fd, mode), "fchmod");

    public static void ChangeOwner(SafeFileHandle fd, uint uid, uint gid) => Check(fchown(fd, uid, gid), "fchown");

    /// <summary>The owner of a link itself (links have no descriptor one could fchown).</summary>
    public static void ChangeLinkOwner(SafeFileHandle dir, string name, uint uid, uint gid) =>
        Check(fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW), $"lchown '{name}'");

    public static void SetXattr(SafeFileHandle fd, string name, byte[] value) =>
        Check(fsetxattr(fd, name, value, (nuint)value.Length, 0), $"setxattr {name}");

    /// <summary>Removes whatever <paramref name="name"/> is in <paramref name="dir"/>, a whole tree included; nothing when missing.</summary>
    public static void Remove(SafeFileHandle dir, string name) => Remove(dir, System.Text.Encoding.UTF8.GetBytes(name + "\0"), null);

    /// <summary>
    /// Removes <paramref name="path"/> and everything below it, working on the names' bytes (they need not be UTF-8,
    /// which <see cref="Directory.Delete(string, bool)"/> cannot handle), never following a link and never leaving
    /// the file system the folder is on (a mount below it is refused, as <c>rm --one-file-system</c> does). Missing: nothing.
    /// </summary>
    public static void RemoveTree(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        var parent = Path.GetDirectoryName(full) ?? throw new ArgumentException("cannot remove /", nameof(path));
        SafeFileHandle dir;
        try { dir = OpenRoot(parent); }
        catch (Failure e) when (e.Errno == ENOENT) { return; }
        using (dir) Remove(dir, System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(full) + "\0"), null);
    }

    private static void Remove(SafeFileHandle dir, byte[] name, ulong? device)
    {
        if (StatOf(dir, name) is not { } status) return;
        if (status.Type != S_IFDIR)
        {
            Check(unlinkat(dir, name, 0), $"unlink '{Display(name)}'");
            return;
        }
        if (device is { } d && status.Device != d)
            throw new Failure($"remove '{Display(name)}' (another file system is mounted there)", EXDEV);
        var fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd < 0) throw Fail($"open '{Display(name)}'");
        using (var child = new SafeFileHandle(fd, ownsHandle: true))
            foreach (var entry in Entries(child))
                Remove(child, entry, status.Device);
        Check(unlinkat(dir, name, AT_REMOVEDIR), $"rmdir '{Display(name)}'");
    }

    /// <summary>The names in a directory as NUL-terminated bytes ("." and ".." left out), read to the end before any is removed.</summary>
    private static List<byte[]> Entries(SafeFileHandle dir)
    {
        var dup = fcntl(dir, 1030 /* F_DUPFD_CLOEXEC */, 0);
        if (dup < 0) throw Fail("dup");
        var stream = fdopendir(dup);
        if (stream == IntPtr.Zero)
        {
            close(dup);
            throw Fail("fdopendir");
        }
        var names = new List<byte[]>();
        try
        {
            while (readdir(stream) is var entry && entry != IntPtr.Zero)
            {
                // struct dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                var namePtr = entry + 19;
                var length = 0;
                while (Marshal.ReadByte(namePtr, length) != 0) length++;
                var bytes = new byte[length + 1];
                Marshal.Copy(namePtr, bytes, 0, length);
                if (length == 1 && bytes[0] == '.' || length == 2 && bytes[0] == '.' && bytes[1] == '.') continue;
                names.Add(bytes);
            }
        }
        finally
        {
            closedir(stream);
        }
        return names;
    }

    private static string Display(byte[] name) => System.Text.Encoding.UTF8.GetString(name, 0, Math.Max(0, name.Length - 1));

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long openat2(long number, int dirfd, string path, ref OpenHow how, nuint size);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int openat(SafeFileHandle dirfd, byte[] path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fstatat(SafeFileHandle dirfd, byte[] path, byte[] buffer, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdirat(SafeFileHandle dirfd, string path, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int symlinkat(string target, SafeFileHandle dirfd, string path);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mknodat(SafeFileHandle dirfd, string path, uint mode, ulong dev);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int linkat(SafeFileHandle olddirfd, byte[] oldpath, SafeFileHandle newdirfd, string newpath, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int unlinkat(SafeFileHandle dirfd, byte[] path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchmod(SafeFileHandle fd, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchown(SafeFileHandle fd, uint uid, uint gid);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fchownat(SafeFileHandle dirfd, string path, uint uid, uint gid, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fsetxattr(SafeFileHandle fd, string name, byte[] value, nuint size, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(SafeFileHandle fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial IntPtr fdopendir(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial IntPtr readdir(IntPtr dir);

    [LibraryImport("libc")]
    private static partial int closedir(IntPtr dir);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
