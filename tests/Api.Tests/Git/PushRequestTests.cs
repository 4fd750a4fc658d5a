using System.IO.Compression;
using System.Text;
using Platform.Api.Git;

namespace Platform.Api.Tests.Git;

/// <summary>Reading what a push asked for from the start of receive-pack's request, including what an attacker could send instead.</summary>
public sealed class PushRequestTests
{
    private static string Pkt(string payload) => (payload.Length + 4).ToString("x4") + payload;

    private static byte[] Request(string caps, params string[] options)
    {
        var zero = new string('0', 40);
        var text = Pkt($"{zero} {new string('a', 40)} refs/heads/main\0{caps}") + "0000";
        if (options.Length > 0) text += string.Concat(options.Select(o => Pkt(o + "\n"))) + "0000";
        return Encoding.ASCII.GetBytes(text + "PACK\0\0\0\u0002");
    }

    [Fact]
    public void Capabilities_and_push_options_are_read_from_plain_and_gzip_bodies()
    {
        var body = Request(" report-status side-band-64k quiet push-options object-format=sha1 agent=git/2.39", "no-follow", "ci.skip");
        foreach (var (bytes, gzip) in new[] { (body, false), (Gzip(body), true) })
        {
            var r = PushRequest.Parse(bytes, gzip);
            Assert.Contains("side-band-64k", r.Capabilities);
            Assert.Contains("push-options", r.Capabilities);
            Assert.Equal(["no-follow", "ci.skip"], r.Options);
            Assert.True(r.NoFollow);
        }
        // Without -o no-follow (git's quiet capability alone is not a request to stop following).
        var plain = PushRequest.Parse(Request(" report-status side-band-64k quiet"), false);
        Assert.Contains("side-band-64k", plain.Capabilities);
        Assert.False(plain.NoFollow);
    }

    [Theory]
    [InlineData("")]
    [InlineData("zzzz not a pkt-line")]
    [InlineData("0003")]
    [InlineData("ffffshort")]
    [InlineData("0000")]
    public void Anything_malformed_reads_as_no_capabilities(string body)
    {
        var r = PushRequest.Parse(Encoding.ASCII.GetBytes(body), gzip: false);
        Assert.Empty(r.Capabilities);
        Assert.Empty(r.Options);
        // Bytes that claim to be gzip but are not.
        Assert.Empty(PushRequest.Parse(Encoding.ASCII.GetBytes(body + "garbage"), gzip: true).Capabilities);
    }

    [Fact]
    public void Options_are_read_only_after_the_push_options_capability_and_a_cut_body_keeps_what_is_whole()
    {
        // Option-looking lines without the capability are not options.
        Assert.Empty(PushRequest.Parse(Request(" report-status side-band-64k", "no-follow"), false).Options);
        // A body cut inside the options keeps the whole ones.
        var body = Request(" side-band-64k push-options", "no-follow", "second");
        var cut = body.AsSpan(0, Encoding.ASCII.GetString(body).IndexOf("second", StringComparison.Ordinal)).ToArray();
        Assert.Equal(["no-follow"], PushRequest.Parse(cut, false).Options);
    }

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(bytes);
        return output.ToArray();
    }
}
