using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// The node agent: joins the cluster and reports its capacity (AgentService). Its runtime parts
// (layer store, root file systems, runc, CNI) are in place and tested; the reconcile loop that runs
// the instances the Api assigns is the next step of issue 4 (docs/architecture.md, "Nodes").
namespace Platform.NodeAgent
{
    /// <summary>Entry point (named, so test projects can reference the agent beside the Api's Program).</summary>
    public static class AgentProgram
    {
        public static async Task Main(string[] args)
        {
            var builder = Host.CreateApplicationBuilder(args);
            builder.Services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section).ValidateOnStart();
            builder.Services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddHostedService<AgentService>();
            await builder.Build().RunAsync();
        }
    }
}
