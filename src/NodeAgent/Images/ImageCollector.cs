using Microsoft.Extensions.Logging;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Images;

/// <summary>
/// Deletes unpacked layers and their id-shifted copies that no instance on this node uses and that have
/// been seen unused for <see cref="UnusedGrace"/> (by this process: after an agent restart the grace
/// starts again). The caller runs it only when no start is in flight and the first desired state is known.
/// </summary>
public sealed partial class ImageCollector(AgentLayout layout, ILogger log)
{
    /// <summary>How often unused images are collected, and how long an unused layer is kept (a redeploy soon after reuses it).</summary>
    public static readonly TimeSpan CollectEvery = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan UnusedGrace = TimeSpan.FromMinutes(10);

    private readonly Dictionary<string, DateTime> _unusedSince = [];
    private DateTime _last = DateTime.MinValue;

    /// <summary>At most every <see cref="CollectEvery"/>: see <see cref="CollectNow"/>.</summary>
    public int Collect(IReadOnlyCollection<InstanceRecord> records, DateTime now)
    {
        if (_last == DateTime.MinValue) _last = now;   // not right after a start: adopted records first
        if (now - _last < CollectEvery) return 0;
        _last = now;
        return CollectNow(records, now);
    }

    /// <summary>Removes what has been unused for the grace period; returns how many folders went.</summary>
    public int CollectNow(IReadOnlyCollection<InstanceRecord> records, DateTime now)
    {
        if (records.Any(r => r.Layers is null && r.HostPort > 0))
            return 0;   // a record from before layers were recorded: cannot tell what it uses
        var used = records.SelectMany(r => r.Layers ?? []).Select(d => d.Replace("sha256:", "")).ToHashSet();
        var removed = 0;
        var candidates = (Directory.Exists(layout.LayerFolders) ? Directory.GetDirectories(layout.LayerFolders) : [])
            .Concat(Directory.Exists(layout.ShiftedLayers) ? Directory.GetDirectories(layout.ShiftedLayers).SelectMany(Directory.GetDirectories) : []);
        foreach (var dir in candidates)
        {
            var hex = Path.GetFileName(dir);
            if (hex.Contains('.')) continue;   // a folder being made (…tmp-…)
            if (used.Contains(hex))
            {
                _unusedSince.Remove(dir);
                continue;
            }
            if (!_unusedSince.TryGetValue(dir, out var since))
            {
                _unusedSince[dir] = now;
                continue;
            }
            if (now - since < UnusedGrace) continue;
            _unusedSince.Remove(dir);
            try
            {
                // Byte-level and no-follow: a layer's names need not be UTF-8, which Directory.Delete cannot remove.
                NoFollow.RemoveTree(dir);
                if (Path.GetDirectoryName(dir) == layout.LayerFolders && LayerStore.SizeFileOf(layout.Layers, hex) is var size && File.Exists(size))
                    File.Delete(size);
                removed++;
            }
            catch (IOException e)
            {
                LogFailed(log, dir, e.Message);
            }
        }
        if (removed > 0) LogCollected(log, removed);
        return removed;
    }

    [LoggerMessage(EventId = 26, Level = LogLevel.Information, Message = "Collected {Count} unused layer folder(s)")]
    private static partial void LogCollected(ILogger logger, int count);

    [LoggerMessage(EventId = 28, Level = LogLevel.Warning, Message = "Collecting {Folder} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string folder, string reason);
}
