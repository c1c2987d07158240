using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace LLGBM.Text;

/// <summary>
/// Qwen2's pre-tokeniser: splits text into the pieces that byte-level BPE then encodes one by one. It matches the
/// pattern of Qwen2's <c>tokenizer.json</c> (<see cref="Pattern"/>) from left to right, every match one piece, with
/// the backtracking regex semantics of Hugging Face <c>tokenizers</c> (Oniguruma): alternatives tried in order,
/// greedy quantifiers giving back as needed. It is written out by hand over Unicode code points rather than run
/// through .NET's <c>Regex</c>, whose <c>\p{L}</c> and <c>\p{N}</c> never match a character outside the Basic
/// Multilingual Plane (a surrogate pair is two characters of category <c>Cs</c> to .NET).
/// </summary>
/// <remarks>
/// Character classes: a letter is a code point of general category L (Lu, Ll, Lt, Lm, Lo), a number one of category
/// N (Nd, Nl, No), white space a code point with the Unicode White_Space property, a newline <c>\r</c> or
/// <c>\n</c>. The contractions match ASCII letters in either case (<c>'S</c>, <c>'Ll</c>). A lone surrogate counts as
/// U+FFFD.
/// </remarks>
public sealed class Qwen2PreTokenizer : PreTokenizer
{
    /// <summary>The pattern this pre-tokeniser implements (Qwen2's <c>tokenizer.json</c>, pre_tokenizer Split, behaviour Isolated).</summary>
    public const string Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    static readonly string[] Contractions = ["s", "t", "re", "ve", "m", "ll", "d"];

    /// <summary>The shared instance (the pre-tokeniser has no state).</summary>
    public static Qwen2PreTokenizer Instance { get; } = new();

    Qwen2PreTokenizer() { }

    /// <summary>The pieces of <paramref name="text"/>, in order; they concatenate to the text.</summary>
    public static IReadOnlyList<string> Split(string text) =>
        Ranges(text).Select(r => text.Substring(r.Offset, r.Length)).ToList();

    /// <summary>The pieces of <paramref name="text"/> as (offset, length) in UTF-16 code units, in order and contiguous.</summary>
    public static List<(int Offset, int Length)> Ranges(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int Offset, int Length)>();
        var i = 0;
        while (i < text.Length)
        {
            var end = MatchAt(text, i);
            pieces.Add((i, end - i));
            i = end;
        }
        return pieces;
    }

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Ranges(text);

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Ranges(text);

    enum Kind { Letter, Number, Space, Other }

    /// <summary>The code point at <paramref name="i"/>, its length in code units and its class.</summary>
    static (Rune Rune, int Length, Kind Kind) At(ReadOnlySpan<char> text, int i)
    {
        Rune.DecodeFromUtf16(text[i..], out var rune, out var length);
        return (rune, length, Classify(rune));
    }

    static Kind Classify(Rune rune)
    {
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Kind.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Kind.Number;
            default:
                return Rune.IsWhiteSpace(rune) ? Kind.Space : Kind.Other;
        }
    }

    /// <summary>Whether <paramref name="text"/> starts with the ASCII letters <paramref name="lower"/>, in either case.</summary>
    static bool StartsWithAsciiIgnoringCase(ReadOnlySpan<char> text, string lower)
    {
        if (text.Length < lower.Length)
            return false;
        for (var k = 0; k < lower.Length; k++)
            if (!char.IsAsciiLetter(text[k]) || char.ToLowerInvariant(text[k]) != lower[k])
                return false;
        return true;
    }

    static bool IsNewline(Rune rune) => rune.Value is '\r' or '\n';

    /// <summary>The end of the run of code points of class <paramref name="kind"/> that starts at <paramref name="i"/>.</summary>
    static int RunEnd(ReadOnlySpan<char> text, int i, Kind kind)
    {
        while (i < text.Length)
        {
            var (_, length, k) = At(text, i);
            if (k != kind)
                break;
            i += length;
        }
        return i;
    }

    /// <summary>The end of the pattern's match at <paramref name="i"/> (every position has a non-empty match).</summary>
    static int MatchAt(ReadOnlySpan<char> text, int i)
    {
        var (first, firstLength, kind) = At(text, i);
        var next = i + firstLength;
        var nextKind = next < text.Length ? At(text, next).Kind : (Kind?)null;

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (first.Value == '\'')
            foreach (var suffix in Contractions)
                if (StartsWithAsciiIgnoringCase(text[next..], suffix))
                    return next + suffix.Length;

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (kind is Kind.Space or Kind.Other && !IsNewline(first) && nextKind == Kind.Letter)
            return RunEnd(text, next, Kind.Letter);
        if (kind == Kind.Letter)
            return RunEnd(text, i, Kind.Letter);

        // \p{N}
        if (kind == Kind.Number)
            return next;

        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var start = first.Value == ' ' && nextKind == Kind.Other ? next : i;
        if (start < text.Length && At(text, start).Kind == Kind.Other)
        {
            var end = RunEnd(text, start, Kind.Other);
            while (end < text.Length && text[end] is '\r' or '\n')
                end++;
            return end;
        }

        // The rest starts with white space (every code point is a letter, a number, white space or other).
        var spaceEnd = RunEnd(text, i, Kind.Space);

        // \s*[\r\n]+ : up to the last newline of the run.
        for (var j = spaceEnd - 1; j >= i; j--)
            if (text[j] is '\r' or '\n')
                return j + 1;

        // \s+(?!\S) : the run, less its last code point when something other than white space follows.
        if (spaceEnd == text.Length)
            return spaceEnd;
        // (White-space code points all lie in the Basic Multilingual Plane: one code unit each.)
        if (spaceEnd - 1 > i)
            return spaceEnd - 1;

        // \s+
        return spaceEnd;
    }
}
