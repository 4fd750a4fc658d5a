using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// The node agent: joins the cluster, long-polls the instances placed on its node and runs them through
// runc and CNI (AgentService, InstanceManager); docs/architecture.md, "Nodes". Under systemd it
// reports readiness and stopping (Type=notify) and logs without colour codes.
namespace Platform.NodeAgent
{
    /// <summary>Entry point (named, so test projects can reference the agent beside the Api's Program).</summary>
    public static class AgentProgram
    {
        public static async Task Main(string[] args)
        {
            var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(args);
            builder.Services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section).ValidateOnStart();
            builder.Services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddHostedService<AgentService>();
            builder.Services.AddSystemd();
            await builder.Build().RunAsync();
        }
    }
}
