using Microsoft.Extensions.Logging;
using Platform.Api.Jobs;

namespace Platform.Api.Tests.Jobs;

/// <summary>Hangfire's process-wide logging follows the hosts that still run: a stopped host's disposed factory is never used.</summary>
public sealed class HangfireLogsTests
{
    private sealed class Counting : ILoggerProvider
    {
        public int Written;
        public ILogger CreateLogger(string categoryName) => new Logger(this);
        public void Dispose() { }

        private sealed class Logger(Counting owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                Interlocked.Increment(ref owner.Written);
        }
    }

    [Fact]
    public void A_stopped_hosts_factory_is_not_used_and_the_one_still_running_gets_the_logs()
    {
        var (first, second) = (new Counting(), new Counting());
        var firstFactory = LoggerFactory.Create(b => b.AddProvider(first));
        var secondFactory = LoggerFactory.Create(b => b.AddProvider(second));
        using var firstHost = HangfireLogs.Instance.Register(firstFactory);
        var secondHost = HangfireLogs.Instance.Register(secondFactory);
        var log = HangfireLogs.Instance.GetLogger("Hangfire.Test");

        Assert.True(log.Log(Hangfire.Logging.LogLevel.Info, () => "while both run", null!));
        Assert.Equal(1, second.Written);   // the newest host

        secondHost.Dispose();
        secondFactory.Dispose();   // as a stopped host's is
        Assert.True(log.Log(Hangfire.Logging.LogLevel.Warn, () => "after the second stopped", null!));
        Assert.Equal(1, first.Written);
        Assert.Equal(1, second.Written);
        firstFactory.Dispose();
    }
}
