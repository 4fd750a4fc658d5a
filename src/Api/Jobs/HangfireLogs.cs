using Hangfire.Logging;
using HangfireLevel = Hangfire.Logging.LogLevel;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Platform.Api.Jobs;

/// <summary>
/// Hangfire's log provider is one per process (<c>Hangfire.Logging.LogProvider</c> is static, and
/// Hangfire.NetCore points it at the logger factory of whichever host resolved Hangfire last). With
/// two hosts in one process (tests; a build worker beside an Api) the first to stop would leave every
/// later Hangfire call logging into a disposed factory — and Hangfire creates loggers while it
/// enqueues a job, so enqueueing a build threw ObjectDisposedException in the middle of a git push.
/// This provider logs to the newest host that still runs: each registers its factory while it lives.
/// It is the one process-wide piece the Api keeps, because the library's setting is process-wide.
/// </summary>
public sealed class HangfireLogs : ILogProvider
{
    public static readonly HangfireLogs Instance = new();

    private readonly Lock _lock = new();
    private readonly List<ILoggerFactory> _live = [];

    /// <summary>Hangfire logs to <paramref name="factory"/> until the returned handle is disposed (when its host stops).</summary>
    public IDisposable Register(ILoggerFactory factory)
    {
        lock (_lock) _live.Add(factory);
        return new Registration(this, factory);
    }

    private ILoggerFactory? Current
    {
        get { lock (_lock) return _live.Count > 0 ? _live[^1] : null; }
    }

    public ILog GetLogger(string name) => new Logger(this, name);

    private sealed class Registration(HangfireLogs owner, ILoggerFactory factory) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lock) owner._live.Remove(factory);
        }
    }

    private sealed class Logger(HangfireLogs owner, string name) : ILog
    {
        public bool Log(HangfireLevel logLevel, Func<string> messageFunc, Exception exception)
        {
            if (owner.Current is not { } factory) return false;
            try
            {
                var logger = factory.CreateLogger(name);
                var level = logLevel switch
                {
                    HangfireLevel.Trace => MsLogLevel.Trace, HangfireLevel.Debug => MsLogLevel.Debug, HangfireLevel.Info => MsLogLevel.Information,
                    HangfireLevel.Warn => MsLogLevel.Warning, HangfireLevel.Error => MsLogLevel.Error, _ => MsLogLevel.Critical,
                };
                if (messageFunc is null) return logger.IsEnabled(level);
                if (!logger.IsEnabled(level)) return false;
#pragma warning disable CA2254 // Hangfire hands over finished text, not a template
                logger.Log(level, exception, messageFunc());
#pragma warning restore CA2254
                return true;
            }
            catch (ObjectDisposedException)
            {
                return false;   // its host stopped between the look-up and the call
            }
        }
    }
}
