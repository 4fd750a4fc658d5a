using System.Text;
using Microsoft.EntityFrameworkCore;
using Platform.Data;

namespace Platform.Api.Builds;

/// <summary>
/// Follows a build's log file as the build writes it: whole lines from a byte offset, as they arrive, until the
/// build has ended and every line is out. The file is read every 250 ms and the build's state once a second, so a
/// follower costs a file stat and, now and then, one indexed row; the log on the data folder is the one source,
/// whichever replica or worker writes it. Used by the log's event stream and by <c>git push</c>'s progress.
/// </summary>
public static class BuildLogFollower
{
    /// <summary>
    /// Hands each batch of new whole lines (as written, a trailing <c>\r</c> kept) and the offset after them to
    /// <paramref name="onLines"/>, and the build's state to <paramref name="onQuiet"/> once a second without output;
    /// returns the build's final state, or its state when <paramref name="onQuiet"/> answered false (stop following).
    /// </summary>
    public static async Task<string> FollowAsync(PlatformDbContext db, Guid buildId, string file, long offset,
        Func<IReadOnlyList<string>, long, Task> onLines, Func<string, Task<bool>>? onQuiet, CancellationToken ct)
    {
        var state = await StateAsync(db, buildId, ct);
        var quietTicks = 0;
        var lastLook = false;
        while (true)
        {
            var finished = BuildStates.IsFinished(state);
            if (File.Exists(file))
            {
                await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                if (stream.Length > offset)
                {
                    stream.Seek(offset, SeekOrigin.Begin);
                    var buffer = new byte[Math.Min(stream.Length - offset, 256 * 1024)];
                    var n = await stream.ReadAsync(buffer, ct);
                    var text = Encoding.UTF8.GetString(buffer, 0, n);
                    var cut = text.LastIndexOf('\n');
                    if (cut >= 0)
                    {
                        var complete = text[..(cut + 1)];
                        offset += Encoding.UTF8.GetByteCount(complete);
                        await onLines(complete.Split('\n')[..^1], offset);
                        quietTicks = 0;
                        continue;   // more may be there already
                    }
                }
            }
            // The build's last lines (its release, its failure) are written just after its state: look once more.
            if (finished && lastLook) return state;
            if (finished)
            {
                lastLook = true;
                await Task.Delay(500, ct);
                continue;
            }
            await Task.Delay(250, ct);
            if (++quietTicks % 4 == 0)
            {
                state = await StateAsync(db, buildId, ct);
                if (onQuiet is not null && !BuildStates.IsFinished(state) && !await onQuiet(state)) return state;
            }
        }
    }

    private static Task<string> StateAsync(PlatformDbContext db, Guid buildId, CancellationToken ct) =>
        db.Builds.AsNoTracking().Where(x => x.Id == buildId).Select(x => x.State).FirstAsync(ct);
}
