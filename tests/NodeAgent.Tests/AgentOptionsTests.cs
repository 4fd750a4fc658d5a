using Platform.NodeAgent;

namespace Platform.NodeAgent.Tests;

public sealed class AgentOptionsTests : IDisposable
{
    private readonly string _dir = Path.Combine("/var/tmp", "platform-options-tests", Guid.NewGuid().ToString("N")[..8]);

    public AgentOptionsTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        Directory.Delete(_dir, recursive: true);
    }

    private static AgentOptions Options(string dataDir) => new() { ApiUrl = "http://127.0.0.1:5080", NodeName = "n1", DataDir = dataDir };

    [Fact]
    public void A_data_folder_below_a_folder_others_cannot_enter_is_refused_naming_that_folder()
    {
        var closed = Path.Combine(_dir, "home");
        Directory.CreateDirectory(closed);
        var dataDir = Path.Combine(closed, "clone", "data", "node");

        File.SetUnixFileMode(closed, (UnixFileMode)0b111_101_101);   // 0755: positive control
        Assert.True(new AgentOptionsValidator().Validate(null, Options(dataDir)).Succeeded);

        File.SetUnixFileMode(closed, (UnixFileMode)0b111_000_000);   // 0700, as /root is
        var result = new AgentOptionsValidator().Validate(null, Options(dataDir));
        Assert.True(result.Failed);
        Assert.Contains($"inside '{closed}'", result.FailureMessage);
        Assert.Contains("mode 0700", result.FailureMessage);
        Assert.Contains("permission denied", result.FailureMessage);
    }

    [Fact]
    public void Image_caps_must_be_positive_and_default_to_what_the_docs_say()
    {
        var o = Options(Path.Combine(_dir, "data"));
        Assert.True(new AgentOptionsValidator().Validate(null, o).Succeeded);
        Assert.Equal((4L << 30, 8L << 30, 4L << 20, 4L << 20), (o.MaxLayerBytes, o.MaxImageBytes, o.MaxConfigBytes, o.MaxManifestBytes));
        o.MaxImageBytes = 0;
        var result = new AgentOptionsValidator().Validate(null, o);
        Assert.True(result.Failed);
        Assert.Contains("MaxImageBytes", result.FailureMessage);
    }

    [Fact]
    public void Allowed_private_ranges_must_be_IPv4_ranges_in_CIDR_notation()
    {
        var good = Options(Path.Combine(_dir, "data"));
        good.AllowedPrivateRanges = ["10.20.0.0/16", "192.168.7.9/32"];
        Assert.True(new AgentOptionsValidator().Validate(null, good).Succeeded);

        foreach (var bad in new[] { "10.20.0.0", "fc00::/7", "10.20.0.0/33", "intranet" })
        {
            var o = Options(Path.Combine(_dir, "data"));
            o.AllowedPrivateRanges = [bad];
            var result = new AgentOptionsValidator().Validate(null, o);
            Assert.True(result.Failed, bad);
            Assert.Contains($"Agent:AllowedPrivateRanges: '{bad}'", result.FailureMessage);
        }
    }
}
