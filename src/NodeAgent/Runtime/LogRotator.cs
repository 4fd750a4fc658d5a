using Microsoft.Extensions.Logging;

namespace Platform.NodeAgent.Runtime;

/// <summary>
/// output.log past its limit is copied to output.log.1 and truncated in place (the shim appends with
/// O_APPEND, so it continues at the new end); a line written between copy and truncate can be lost.
/// </summary>
public sealed partial class LogRotator(long maxBytes, ILogger log)
{
    public void Rotate(IEnumerable<string> bundles)
    {
        foreach (var bundle in bundles)
        {
            var file = Path.Combine(bundle, "output.log");
            try
            {
                if (!File.Exists(file) || new FileInfo(file).Length <= maxBytes) continue;
                File.Copy(file, file + ".1", overwrite: true);
                using var f = new FileStream(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                f.SetLength(0);
            }
            catch (IOException e)
            {
                LogFailed(log, file, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 27, Level = LogLevel.Warning, Message = "Rotating {File} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string file, string reason);
}
