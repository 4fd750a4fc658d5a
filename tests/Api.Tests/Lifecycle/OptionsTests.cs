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

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        yield return e;
        if (e is AggregateException a)
            foreach (var inner in a.InnerExceptions.SelectMany(Flatten)) yield return inner;
        else if (e.InnerException is { } i)
            foreach (var inner in Flatten(i)) yield return inner;
    }
}
