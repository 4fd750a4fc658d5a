using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Platform.NodeAgent;

// The node agent host. It starts, validates its configuration and stops cleanly on SIGTERM; joining,
// reconciling and running containers through runc arrive with the runtime issue (see docs/design.md).
var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>();
builder.Services.AddHostedService<AgentService>();
await builder.Build().RunAsync();
