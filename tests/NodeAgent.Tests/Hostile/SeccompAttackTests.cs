using Microsoft.Extensions.Logging.Abstractions;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Tests.Hostile;

/// <summary>
/// Seccomp fails closed: a node without containers-common's profile still confines its containers (the
/// embedded default), and a broken profile stops the agent rather than letting containers run unconfined.
/// The attack: a tenant's process makes a user and UTS name-space of its own, where it holds every
/// capability, and calls <c>sethostname</c> there — a call the default profile refuses whatever the
/// capabilities (as it refuses bpf, setns, perf_event_open, module loading…), so a container whose
/// profile is in force gets EPERM and one without seccomp succeeds.
/// </summary>
[Trait("Suite", "Hostile")]
public sealed class SeccompAttackTests : IAsyncLifetime
{
    private Busybox _lab = null!;
    private string Missing => Path.Combine(_lab.Dir, "no-such-folder", "seccomp.json");

    public async Task InitializeAsync() => _lab = await Busybox.CreateAsync();

    public async Task DisposeAsync() => await _lab.DisposeAsync();

    private const string Attack =
        "grep '^Seccomp:' /proc/self/status; if unshare -U -r -u hostname tenant 2>/dev/null; then echo sethostname-allowed; else echo sethostname-refused; fi";

    [Fact]
    public async Task With_the_host_profile_missing_a_container_still_runs_under_seccomp_and_cannot_call_what_the_profile_refuses()
    {
        var profile = Seccomp.Load(Missing);
        var confined = await _lab.RunAsync("sc-" + Guid.NewGuid().ToString("N")[..6], Attack, profile);
        Assert.True(confined.Contains("Seccomp:\t2"), confined);
        Assert.True(confined.Contains("sethostname-refused"), confined);

        // Positive control: the same container without the profile (which the agent never writes) may.
        var unconfined = await _lab.RunAsync("nosc-" + Guid.NewGuid().ToString("N")[..6], Attack, profile,
            edit: spec => spec["linux"]!.AsObject().Remove("seccomp"));
        Assert.True(unconfined.Contains("Seccomp:\t0"), unconfined);
        Assert.True(unconfined.Contains("sethostname-allowed"), unconfined);
    }

    [Fact]
    public void An_unreadable_host_profile_gives_the_embedded_default_and_a_present_one_is_preferred()
    {
        Directory.CreateDirectory(Missing);   // a folder where the file should be: reading it fails
        Assert.Equal(Seccomp.Embedded().ToJsonString(), Seccomp.Load(Missing).ToJsonString());

        var own = Path.Combine(_lab.Dir, "own-seccomp.json");
        File.WriteAllText(own, """{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit"],"action":"SCMP_ACT_ALLOW"}]}""");
        var loaded = Seccomp.Load(own);
        Assert.Equal("read", loaded["syscalls"]![0]!["names"]![0]!.GetValue<string>());
        Assert.Single(loaded["syscalls"]!.AsArray());
    }

    [Theory]
    [InlineData("{ this is not json")]
    [InlineData("[]")]
    [InlineData("""{"syscalls":[]}""")]
    [InlineData("""{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"}]}""")]
    public void A_broken_host_profile_stops_the_agent_naming_the_file(string content)
    {
        var broken = Path.Combine(_lab.Dir, "broken-seccomp.json");
        File.WriteAllText(broken, content);

        var e = Assert.Throws<InvalidOperationException>(() => Seccomp.Load(broken));
        Assert.Contains(broken, e.Message);
        Assert.Contains("never started without seccomp", e.Message);

        var settings = new RuntimeSettings(AgentLayout.For(Path.Combine(_lab.Dir, "agent")), _lab.CgroupParent, "hsc", "/usr/lib/cni", 20000, 10,
            TimeSpan.Zero, 1, 1 << 20, 64, SeccompProfile: broken);
        var start = Assert.Throws<InvalidOperationException>(() =>
            new RuncRuntime(settings, () => throw new InvalidOperationException("no pulls here"), TimeProvider.System, NullLogger.Instance));
        Assert.Contains(broken, start.Message);

        // Positive control: the same agent settings with the host's real profile start.
        _ = new RuncRuntime(settings with { SeccompProfile = Seccomp.DefaultProfilePath },
            () => throw new InvalidOperationException("no pulls here"), TimeProvider.System, NullLogger.Instance);
    }
}
