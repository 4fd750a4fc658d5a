namespace Platform.Host.Files;

/// <summary>
/// Files only their owner may read (0600), written whole: to a fresh temporary file made with that mode, then
/// renamed over the old one, so no reader ever sees a readable copy nor a half-written one.
/// </summary>
public static class PrivateFile
{
    public static async Task WriteAllTextAsync(string path, string text, CancellationToken ct)
    {
        var temp = path + ".tmp";
        File.Delete(temp);   // a leftover keeps its old mode: start from a new file
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using (var stream = new FileStream(temp, options))
        await using (var writer = new StreamWriter(stream))
            await writer.WriteAsync(text.AsMemory(), ct);
        File.Move(temp, path, overwrite: true);
    }
}
