using Platform.Api.Builds;
using Platform.Api.Infrastructure;

namespace Platform.Api.Tests.Builds;

/// <summary>What the build recovery asks about builds on this machine: which run here, which apps they build, which scratch folders are whose.</summary>
public sealed class LocalBuildsTests
{
    [Fact]
    public void A_running_build_is_known_by_its_id_and_by_its_app_until_it_is_removed()
    {
        var local = new LocalBuilds();
        Guid build = Guid.NewGuid(), app = Guid.NewGuid();
        local.Add(build, app);
        Assert.True(local.Runs(build));
        Assert.True(local.BuildsApp(app));
        Assert.False(local.BuildsApp(build));
        local.Remove(build);
        Assert.False(local.Runs(build));
        Assert.False(local.BuildsApp(app));
    }

    [Fact]
    public void Each_attempt_of_a_build_has_a_scratch_folder_of_its_own_and_each_folder_names_its_build()
    {
        var root = Path.Combine(Path.GetTempPath(), "layout-" + Guid.NewGuid().ToString("N"));
        try
        {
            var layout = new DataLayout(root);
            var build = Guid.NewGuid();
            Assert.NotEqual(layout.BuildScratch(build, 1), layout.BuildScratch(build, 2));
            Directory.CreateDirectory(layout.BuildScratch(build, 1));
            Directory.CreateDirectory(Path.Combine(layout.Scratch, "build-not-a-build"));
            var found = layout.BuildScratchFolders().ToDictionary(f => Path.GetFileName(f.Folder), f => f.Build);
            Assert.Equal(build, found[Path.GetFileName(layout.BuildScratch(build, 1))]);
            Assert.Equal(Guid.Empty, found["build-not-a-build"]);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
