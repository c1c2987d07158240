using System.Text;

namespace LLGBM.Text;

/// <summary>
/// GPT-2's byte-to-unicode table, used by byte-level BPE vocabularies (GPT-2, Qwen2): every byte is written as one
/// printable character, so that a token's bytes can be stored as a JSON string. The printable bytes
/// <c>'!'..'~'</c>, <c>'¡'..'¬'</c> and <c>'®'..'ÿ'</c> stand for themselves; the other 68 bytes, in increasing
/// order, become U+0100, U+0101, … (so space 0x20 → <c>Ġ</c> U+0120 and newline 0x0A → <c>Ċ</c> U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildTable();
    static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    static char[] BuildTable()
    {
        var table = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    /// <summary>The character that stands for <paramref name="value"/>.</summary>
    public static char ToChar(byte value) => ByteToChar[value];

    /// <summary>The byte that <paramref name="symbol"/> stands for, or false when it is not one of the 256 symbols.</summary>
    public static bool TryGetByte(char symbol, out byte value) => CharToByte.TryGetValue(symbol, out value);

    /// <summary>The symbols of <paramref name="bytes"/>, one character per byte.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
            chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>The symbols of the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static string EncodeText(string text) => Encode(Encoding.UTF8.GetBytes(text));

    /// <summary>
    /// Appends the bytes that <paramref name="symbols"/> stand for to <paramref name="output"/>; returns false (and
    /// appends nothing) when a character is not one of the 256 symbols.
    /// </summary>
    public static bool TryDecode(string symbols, List<byte> output)
    {
        foreach (var c in symbols)
            if (!CharToByte.ContainsKey(c))
                return false;
        foreach (var c in symbols)
            output.Add(CharToByte[c]);
        return true;
    }
}
