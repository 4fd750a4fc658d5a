using Platform.Contracts;

namespace Platform.Contracts.Tests;

public sealed class NamesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("web")]
    [InlineData("my-app-2")]
    [InlineData("0abc")]
    public void Dns1123_labels_are_accepted(string name)
    {
        Assert.True(Names.IsDns1123Label(name));
        Assert.Null(Names.Validate(name));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-a")]
    [InlineData("a-")]
    [InlineData("A")]
    [InlineData("a_b")]
    [InlineData("a.b")]
    [InlineData("a b")]
    [InlineData("é")]
    [InlineData("a\n")]
    [InlineData(null)]
    public void Anything_else_is_refused_with_a_reason(string? name)
    {
        Assert.False(Names.IsDns1123Label(name));
        Assert.NotNull(Names.Validate(name));
    }

    [Fact]
    public void Two_apps_of_different_teams_can_spell_one_host_label_and_the_room_left_for_an_app_name_keeps_it_one_dns_label()
    {
        Assert.Equal(Names.HostLabel("shop-prod", "acme", "corp"), Names.HostLabel("shop", "prod", "acme-corp"));
        Assert.Equal(63 - 4 - 4 - 2, Names.MaxAppNameLength("acme", "corp"));
        var longest = Names.HostLabel(new string('a', Names.MaxAppNameLength("acme", "corp")), "acme", "corp");
        Assert.True(Names.IsDns1123Label(longest));
        Assert.False(Names.IsDns1123Label(longest + "x"));
    }

    [Fact]
    public void Labels_are_at_most_63_characters()
    {
        Assert.True(Names.IsDns1123Label(new string('a', 63)));
        Assert.False(Names.IsDns1123Label(new string('a', 64)));
        Assert.Contains("63", Names.Validate(new string('a', 64)));
    }
}

public sealed class QuantitiesTests
{
    [Theory]
    [InlineData(16, true)]
    [InlineData(15, false)]
    [InlineData(1024 * 1024, true)]
    [InlineData(1024 * 1024 + 1, false)]
    [InlineData(-1, false)]
    public void Memory_must_be_within_bounds(long value, bool ok) =>
        Assert.Equal(ok, Quantities.Range(value, Quantities.MinMemoryMiB, Quantities.MaxMemoryMiB) is null);

    [Fact]
    public void The_largest_admissible_app_cannot_overflow_quota_arithmetic()
    {
        var biggest = AppFootprint.Of(Quantities.MaxInstances, Quantities.MaxMemoryMiB, Quantities.MaxCpuMillicores);
        Assert.Equal((long)Quantities.MaxInstances * Quantities.MaxMemoryMiB, biggest.MemoryMiB);
        Assert.True(biggest.MemoryMiB > 0 && biggest.CpuMillicores > 0);
    }
}

public sealed class QuotaMathTests
{
    private static readonly QuotaLimits Limits = new(MemoryMiB: 1024, CpuMillicores: 1000, Instances: 4, Apps: 2);

    [Fact]
    public void A_change_that_fits_is_admitted()
    {
        var used = AppFootprint.Of(2, 256, 250);
        Assert.Empty(QuotaMath.Violations("team", used, AppFootprint.Of(2, 256, 250), Limits));
    }

    [Fact]
    public void Every_exceeded_dimension_is_reported_with_asked_used_and_limit()
    {
        var used = AppFootprint.Of(2, 256, 250);
        var v = QuotaMath.Violations("team", used, AppFootprint.Of(3, 256, 250) + AppFootprint.Of(0, 1, 10), Limits);
        Assert.Equal(["memoryMiB", "cpuMillicores", "instances", "apps"], v.Select(f => f.Resource));
        var memory = v[0];
        Assert.Equal((768L, 512L, 1024L), (memory.Asked, memory.Used, memory.Limit));
        Assert.True(memory.Exceeded);
    }

    [Fact]
    public void Shrinking_is_always_admitted_even_when_over_a_lowered_limit()
    {
        var used = AppFootprint.Of(10, 512, 500);   // far over every limit
        var shrink = AppFootprint.Of(5, 512, 500) - AppFootprint.Of(10, 512, 500);
        Assert.Empty(QuotaMath.Violations("team", used, shrink with { Apps = 0 }, Limits));
    }

    [Fact]
    public void A_null_limit_means_no_limit_at_that_scope()
    {
        var none = new QuotaLimits(null, null, null, null);
        Assert.Empty(QuotaMath.Violations("project", AppFootprint.Of(1000, 1024, 1000), AppFootprint.Of(1000, 1024, 1000), none));
    }

    [Fact]
    public void Exactly_reaching_the_limit_is_allowed()
    {
        Assert.Empty(QuotaMath.Violations("team", AppFootprint.Of(2, 256, 250), AppFootprint.Of(2, 256, 250) with { Apps = 0 },
            Limits with { Apps = 1 }));
    }
}
