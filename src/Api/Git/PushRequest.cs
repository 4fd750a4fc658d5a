using System.IO.Compression;
using System.Text;

namespace Platform.Api.Git;

/// <summary>
/// What a push asked for, read from the start of git's receive-pack request (the pkt-line command list before the
/// pack): the capabilities on its first command (<c>side-band-64k</c>, <c>push-options</c>) and the
/// push options (<c>git push -o …</c>) that follow it. Only the first <see cref="PrefixBytes"/> of the body are
/// looked at, and anything that is not a well-formed command list reads as "no capabilities": the bytes are
/// git's to judge, this only decides whether the platform adds its progress to the answer.
/// </summary>
public sealed record PushRequest(IReadOnlySet<string> Capabilities, IReadOnlyList<string> Options)
{
    /// <summary>How much of the request body is kept to read the command list (commands and options are small).</summary>
    public const int PrefixBytes = 64 * 1024;

    public static readonly PushRequest None = new(new HashSet<string>(), []);

    /// <summary>
    /// Whether the person asked not to follow the build here (<c>git push -o no-follow</c>). Not git's <c>quiet</c>
    /// capability: git sends it whenever its stderr is not a terminal, and a script wants the outcome as much as a person.
    /// </summary>
    public bool NoFollow => Options.Contains("no-follow");

    /// <summary>Reads <paramref name="prefix"/> (the body's first bytes, gzip-compressed when <paramref name="gzip"/>).</summary>
    public static PushRequest Parse(ReadOnlySpan<byte> prefix, bool gzip)
    {
        var bytes = gzip ? Inflate(prefix.ToArray()) : prefix.ToArray();
        var at = 0;
        var caps = new HashSet<string>(StringComparer.Ordinal);
        var options = new List<string>();
        // Commands up to a flush; the first carries the capabilities after a NUL.
        var first = true;
        while (Next(bytes, ref at) is { } line)
        {
            if (line.Length == 0) break;   // flush
            if (first && Array.IndexOf(line, (byte)0) is var nul and >= 0)
                foreach (var cap in Encoding.ASCII.GetString(line, nul + 1, line.Length - nul - 1).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    caps.Add(cap.TrimEnd('\n'));
            first = false;
        }
        if (caps.Contains("push-options"))
            while (Next(bytes, ref at) is { Length: > 0 } option)
                options.Add(Encoding.UTF8.GetString(option).TrimEnd('\n'));
        return new PushRequest(caps, options);
    }

    /// <summary>The next pkt-line's payload (empty for a flush), or null at the end of what is there or on anything malformed.</summary>
    private static byte[]? Next(byte[] bytes, ref int at)
    {
        if (at + 4 > bytes.Length) return null;
        if (!int.TryParse(Encoding.ASCII.GetString(bytes, at, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var length)) return null;
        if (length == 0) { at += 4; return []; }
        if (length < 4 || at + length > bytes.Length) return null;
        var payload = bytes[(at + 4)..(at + length)];
        at += length;
        return payload;
    }

    /// <summary>As much of a gzip stream's start as inflates (a cut stream ends where it was cut).</summary>
    private static byte[] Inflate(byte[] compressed)
    {
        using var output = new MemoryStream();
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
            var buffer = new byte[8192];
            int n;
            while (output.Length < PrefixBytes && (n = gzip.Read(buffer)) > 0) output.Write(buffer, 0, n);
        }
        catch (InvalidDataException) { }
        catch (EndOfStreamException) { }
        return output.ToArray();
    }
}
