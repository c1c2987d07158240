using System.Text;

namespace LLGBM;

/// <summary>
/// Reads the text files users give LLGBM (task files, dataset exports, prompts, probes, configs, texts to tokenize)
/// as strict UTF-8: a byte sequence that is not UTF-8 is an <see cref="LlgbmException"/> naming the file and the
/// 0-based byte offset of the first bad byte, where <see cref="File.ReadAllText(string)"/> would silently replace it
/// with U+FFFD. A UTF-8 byte order mark at the start is skipped (offsets still count it).
/// </summary>
public static class TextFiles
{
    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    static readonly byte[] ByteOrderMark = [0xEF, 0xBB, 0xBF];

    /// <summary>The whole of <paramref name="path"/> as text.</summary>
    /// <exception cref="LlgbmException">The file cannot be read or is not UTF-8.</exception>
    public static string ReadAllText(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LlgbmException($"'{path}': cannot be read ({e.Message}).", e);
        }
        return Decode(path, bytes);
    }

    /// <summary>
    /// The lines of <paramref name="path"/>, split as <see cref="File.ReadAllLines(string)"/> splits them (at "\n",
    /// "\r\n" and "\r", without the breaks).
    /// </summary>
    /// <exception cref="LlgbmException">The file cannot be read or is not UTF-8.</exception>
    public static IReadOnlyList<string> ReadAllLines(string path)
    {
        var lines = new List<string>();
        using var reader = new StringReader(ReadAllText(path));
        while (reader.ReadLine() is { } line)
            lines.Add(line);
        return lines;
    }

    /// <summary><paramref name="bytes"/>, the content of <paramref name="path"/>, decoded as strict UTF-8.</summary>
    /// <exception cref="LlgbmException">The bytes are not UTF-8; the message names the file and the byte offset.</exception>
    public static string Decode(string path, byte[] bytes)
    {
        var start = bytes.AsSpan().StartsWith(ByteOrderMark) ? ByteOrderMark.Length : 0;
        try
        {
            return Strict.GetString(bytes, start, bytes.Length - start);
        }
        catch (DecoderFallbackException e)
        {
            var offset = start + Math.Max(e.Index, 0);
            var bad = e.BytesUnknown is { Length: > 0 } unknown ? string.Join(" ", unknown.Select(b => $"0x{b:X2}")) : "?";
            throw new LlgbmException($"'{path}': not UTF-8 text: invalid byte sequence {bad} at byte offset {offset} (save the file as UTF-8).", e);
        }
    }
}
