using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.NodeAgent;

/// <summary>The <c>Agent</c> configuration section (DESIGN.md, "Contract").</summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";
    public string? ApiUrl { get; set; }
    public string? JoinToken { get; set; }
    public string DataDir { get; set; } = "./agent-data";
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();
    public string Address { get; set; } = "127.0.0.1";
}

public sealed class AgentOptionsValidator : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions o) =>
        o.ApiUrl is not null && !Uri.TryCreate(o.ApiUrl, UriKind.Absolute, out _)
            ? ValidateOptionsResult.Fail($"Agent:ApiUrl '{o.ApiUrl}' is not an absolute URL.")
            : ValidateOptionsResult.Success;
}

public sealed partial class AgentService(IOptions<AgentOptions> options, ILogger<AgentService> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LogStarted(log, options.Value.NodeName, options.Value.ApiUrl ?? "(not set)");
        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
        LogStopped(log, options.Value.NodeName);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Node agent {Node} started; control plane {ApiUrl}")]
    private static partial void LogStarted(ILogger logger, string node, string apiUrl);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Node agent {Node} stopped")]
    private static partial void LogStopped(ILogger logger, string node);
}
