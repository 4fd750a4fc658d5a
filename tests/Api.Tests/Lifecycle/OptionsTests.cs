using Platform.Api.Tests.Infrastructure;

namespace Platform.Api.Tests.Lifecycle;

/// <summary>Bad configuration stops the Api at start with the validator's words, before anything is built from it.</summary>
public sealed class OptionsTests
{
    [Fact]
    public async Task An_Api_with_a_build_subnet_that_is_not_a_24_does_not_start_and_says_why()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?> { ["Platform:Builds:Subnet"] = "10.1.0.0/16" });
        var e = Record.Exception(() => host.Services);   // starts the host
        Assert.NotNull(e);
        var messages = Flatten(e).Select(x => x.Message).ToList();
        Assert.Contains(messages, m => m.Contains("Platform:Builds:Subnet '10.1.0.0/16' is not an IPv4 /24", StringComparison.Ordinal));
        Assert.DoesNotContain(Flatten(e), x => x is ArgumentException);
    }

    [Fact]
    public async Task An_Api_with_a_half_configured_bucket_does_not_start_and_names_every_problem()
    {
        await using var host = new PlatformHost(Provider.Sqlite, settings: new Dictionary<string, string?>
        {
            ["Platform:Registry:S3:Bucket"] = "blobs",
            ["Platform:Registry:S3:ServiceUrl"] = "ftp://s3.internal",
            ["Platform:Registry:S3:AccessKey"] = "key-without-secret",
            ["Platform:Registry:S3:PartSizeMiB"] = "1",
            ["Platform:Registry:S3:Prefix"] = "/platform",
        });
        var messages = Flatten(Record.Exception(() => host.Services)!).Select(x => x.Message).ToList();
        Assert.Contains(messages, m => m.Contains("Platform:Registry:S3:ServiceUrl 'ftp://s3.internal' must be an absolute http:// or https:// URL", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("Platform:Registry:S3:AccessKey and SecretKey are set together", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("Platform:Registry:S3:PartSizeMiB must be between 5 and 5120", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("Platform:Registry:S3:Prefix must not start with '/'", StringComparison.Ordinal));
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        yield return e;
        if (e is AggregateException a)
            foreach (var inner in a.InnerExceptions.SelectMany(Flatten)) yield return inner;
        else if (e.InnerException is { } i)
            foreach (var inner in Flatten(i)) yield return inner;
    }
}
