using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Platform.NodeAgent.Tests.Images;

/// <summary>Layers as a tenant would push them: tar (or gzip) bytes written entry by entry, any entry they like.</summary>
internal static class TestLayers
{
    public static byte[] Tar(Action<TarWriter> write, bool gzip = false)
    {
        var raw = new MemoryStream();
        using (var writer = new TarWriter(raw, TarEntryFormat.Pax, leaveOpen: true)) write(writer);
        return gzip ? Gzip(raw.ToArray()) : raw.ToArray();
    }

    public static byte[] Gzip(byte[] bytes)
    {
        var zipped = new MemoryStream();
        using (var gz = new GZipStream(zipped, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(bytes);
        return zipped.ToArray();
    }

    public static void File(TarWriter w, string name, string content, UnixFileMode mode = (UnixFileMode)0b110_100_100, int uid = 0) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)), Mode = mode, Uid = uid, Gid = uid });

    public static void Dir(TarWriter w, string name, UnixFileMode mode = (UnixFileMode)0b111_101_101) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name) { Mode = mode });

    public static void Link(TarWriter w, TarEntryType type, string name, string target) =>
        w.WriteEntry(new PaxTarEntry(type, name) { LinkName = target });

    public static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));
}
