using System.Text;

namespace Platform.Host.Text;

/// <summary>
/// Splits text into lines of at most <c>maxChars</c> characters, whatever the writer sends: a longer line is
/// cut there, ends with <see cref="Marker"/>, goes out at once, and the rest of it (up to its newline) is
/// dropped. What it keeps between feeds is one partial line, so a tenant printing without a newline costs
/// its reader no more than that. A trailing <c>\r</c> is removed, as <see cref="TextReader.ReadLine"/> does.
/// </summary>
public sealed class LineCutter
{
    private readonly StringBuilder _line = new();
    private readonly int _keep;   // what of a cut line is kept: the marker fits after it
    private bool _skipping;

    public LineCutter(int maxChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 64);
        MaxChars = maxChars;
        Marker = $" [line cut at {maxChars} characters]";
        _keep = maxChars - Marker.Length;
    }

    public int MaxChars { get; }

    /// <summary>Ends a cut line; the line with it is still at most <see cref="MaxChars"/> long.</summary>
    public string Marker { get; }

    /// <summary>Feeds <paramref name="text"/>; every line it completes (or cuts) goes to <paramref name="emit"/>, without its newline.</summary>
    public void Feed(ReadOnlySpan<char> text, Action<string> emit)
    {
        while (text.Length > 0)
        {
            var nl = text.IndexOf('\n');
            var part = nl < 0 ? text : text[..nl];
            if (!_skipping)
            {
                var length = _line.Length + part.Length - (nl >= 0 && part.Length > 0 && part[^1] == '\r' ? 1 : 0);
                if (length > MaxChars)
                {
                    _line.Append(part[..Math.Clamp(_keep - _line.Length, 0, part.Length)]);
                    _line.Length = Math.Min(_line.Length, _keep);
                    emit(_line.Append(Marker).ToString());
                    _line.Clear();
                    _skipping = true;
                }
                else
                {
                    _line.Append(part);
                }
            }
            if (nl < 0) return;
            if (_skipping) _skipping = false;
            else emit(Take());
            text = text[(nl + 1)..];
        }
    }

    /// <summary>What is left at the end of the text (a last line without a newline), or null.</summary>
    public string? Flush()
    {
        _skipping = false;
        return _line.Length > 0 ? Take() : null;
    }

    /// <summary>Forgets a partial line (the file it came from was truncated).</summary>
    public void Reset()
    {
        _line.Clear();
        _skipping = false;
    }

    private string Take()
    {
        if (_line.Length > 0 && _line[^1] == '\r') _line.Length--;
        var line = _line.ToString();
        _line.Clear();
        return line;
    }
}

/// <summary>Lines of a reader through a <see cref="LineCutter"/>: <see cref="TextReader.ReadLineAsync(CancellationToken)"/> with a bound.</summary>
public sealed class LineReader(TextReader reader, int maxChars)
{
    private readonly LineCutter _cutter = new(maxChars);
    private readonly char[] _buffer = new char[8 * 1024];
    private readonly Queue<string> _ready = new();
    private bool _done;

    public async ValueTask<string?> ReadLineAsync(CancellationToken ct)
    {
        while (_ready.Count == 0 && !_done)
        {
            var n = await reader.ReadAsync(_buffer, ct);
            if (n == 0)
            {
                _done = true;
                if (_cutter.Flush() is { } last) _ready.Enqueue(last);
            }
            else
            {
                _cutter.Feed(_buffer.AsSpan(0, n), _ready.Enqueue);
            }
        }
        return _ready.TryDequeue(out var line) ? line : null;
    }
}
