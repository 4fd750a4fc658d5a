using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Platform.Api.Infrastructure;
using Platform.Api.Registry;

namespace Platform.Api.Tests.Registry;

/// <summary>The registry keeps no state in statics: two Api hosts in one process (as tests run them) stay apart.</summary>
public sealed class RegistryStateTests
{
    [Fact]
    public void Each_host_serialises_repository_creation_on_its_own_gate()
    {
        RepositoryCreationGate Gate()
        {
            var services = new ServiceCollection().AddPlatformRegistry(new PlatformOptions { DataDir = Path.GetTempPath() });
            using var provider = services.BuildServiceProvider();
            return provider.GetRequiredService<RepositoryCreationGate>();
        }
        Assert.NotSame(Gate(), Gate());
    }

    [Fact]
    public void No_registry_type_holds_mutable_static_state()
    {
        var mutable = typeof(RegistryApi).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(RegistryApi).Namespace)
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(f => !f.IsLiteral && !f.Name.Contains('<'))   // constants; compiler-made fields (lambdas, regex caches)
                .Where(f => !f.IsInitOnly || f.FieldType == typeof(SemaphoreSlim) || f.FieldType.Name.Contains("Dictionary") || f.FieldType == typeof(object))
                .Select(f => $"{t.Name}.{f.Name}"))
            .ToList();
        Assert.Empty(mutable);
    }
}
