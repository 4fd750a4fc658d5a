using System.Text;

namespace Platform.Api.Builds;

/// <summary>
/// A build's log file: the steps' output up to a size limit (a build that prints without end cannot fill the
/// disk; past the limit one line says so and the rest is dropped), and the platform's own "==>" lines always.
/// Written from both output streams of a step at once, so every write takes the lock.
/// </summary>
public sealed class BuildLog(string path, long maxBytes) : IDisposable
{
    private readonly StreamWriter writer = new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
    private long written = File.Exists(path) ? new FileInfo(path).Length : 0;
    private bool truncated;

    /// <summary>How much output one step may print in all before it is stopped (<see cref="Infrastructure.BuildsOptions.MaxStepOutputBytes"/>).</summary>
    public long MaxStepBytes { get; init; } = long.MaxValue;

    /// <summary>A line of a step's output (dropped past the limit).</summary>
    public void Step(string line)
    {
        lock (writer)
        {
            if (truncated) return;
            if (written + Encoding.UTF8.GetByteCount(line) + 1 > maxBytes)
            {
                truncated = true;
                Write($"==> the log reached {maxBytes / (1024 * 1024)} MiB: the rest of the steps' output is not kept (the build goes on)");
                return;
            }
            Write(line);
        }
    }

    /// <summary>A line of the platform's own (what it did, why it failed): always kept.</summary>
    public void Say(string line)
    {
        lock (writer) Write("==> " + line);
    }

    private void Write(string line)
    {
        writer.WriteLine(line);
        written += Encoding.UTF8.GetByteCount(line) + 1;
    }

    public void Dispose() => writer.Dispose();
}
