using System.Text;
using System.Text.RegularExpressions;

namespace LLGBM.Tasks;

/// <summary>
/// Reads the answer out of a generated completion (<see cref="AnswerExtraction"/>) and decides exact matches. The
/// reference answer is normalised by the same extraction, so "#### 1,234" and "1234", or "Yes" and "true", compare
/// equal.
/// </summary>
public static partial class AnswerExtractor
{
    /// <summary>
    /// The answer in <paramref name="completion"/>, normalised, or null when there is none:
    /// <list type="bullet">
    /// <item><see cref="AnswerExtraction.FirstLine"/>: the text before the first newline, trimmed (null when empty).</item>
    /// <item><see cref="AnswerExtraction.ChoiceLetter"/>: an upper-case letter A–J: the whole text when it is one letter
    /// (optionally in parentheses or followed by "." or ":", any case), else the letter after "answer" ("The answer is
    /// (B)", "answer: b"), else the first capital A–J standing alone as a word.</item>
    /// <item><see cref="AnswerExtraction.YesNo"/>: "yes" or "no" for the first of the words yes, no, true, false
    /// (any case; true counts as yes).</item>
    /// <item><see cref="AnswerExtraction.FinalNumber"/>: the first number after "####" when present, else the last
    /// number; thousands separators, "$" and a trailing "." dropped, written canonically (no leading zeros, no
    /// trailing fractional zeros, "-0" as "0"), so "3.50" and "3.5" give the same text.</item>
    /// </list>
    /// </summary>
    public static string? Extract(AnswerExtraction mode, string completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        return mode switch
        {
            AnswerExtraction.FirstLine => FirstLine(completion),
            AnswerExtraction.ChoiceLetter => ChoiceLetter(completion),
            AnswerExtraction.YesNo => YesNo(completion),
            AnswerExtraction.FinalNumber => FinalNumber(completion),
            _ => throw new LlgbmException($"Unknown answer extraction {mode}."),
        };
    }

    /// <summary>
    /// Whether <paramref name="completion"/> answers <paramref name="example"/> correctly: both it and the reference
    /// answer are extracted with the task's <see cref="TaskSpec.Extraction"/> (<see cref="AnswerExtraction.ChoiceLetter"/>
    /// for multiple-choice tasks) and compared exactly; a completion without an answer never matches.
    /// </summary>
    public static bool Matches(TaskSpec spec, TaskExample example, string completion)
    {
        var mode = ModeFor(spec);
        var predicted = Extract(mode, completion);
        return predicted is not null && predicted == Extract(mode, example.Answer);
    }

    /// <summary>The extraction used for <paramref name="spec"/>: its own, or choice letters for multiple choice.</summary>
    public static AnswerExtraction ModeFor(TaskSpec spec) =>
        spec.Kind == TaskKind.MultipleChoice ? AnswerExtraction.ChoiceLetter : spec.Extraction;

    static string? FirstLine(string text)
    {
        var newline = text.IndexOf('\n');
        var line = (newline < 0 ? text : text[..newline]).Trim();
        return line.Length == 0 ? null : line;
    }

    static string? ChoiceLetter(string text)
    {
        var whole = WholeLetter().Match(text);
        if (whole.Success)
            return whole.Groups[1].Value.ToUpperInvariant();
        var announced = AnnouncedLetter().Match(text);
        if (announced.Success)
            return announced.Groups[1].Value.ToUpperInvariant();
        var standalone = StandaloneCapital().Match(text);
        return standalone.Success ? standalone.Groups[1].Value : null;
    }

    static string? YesNo(string text)
    {
        var match = YesNoWord().Match(text);
        if (!match.Success)
            return null;
        var word = match.Groups[1].Value.ToLowerInvariant();
        return word is "yes" or "true" ? "yes" : "no";
    }

    static string? FinalNumber(string text)
    {
        var marker = text.IndexOf("####", StringComparison.Ordinal);
        if (marker >= 0)
        {
            var after = Number().Match(text, marker + 4);
            if (after.Success)
                return Canonical(after);
        }
        var all = Number().Matches(text);
        return all.Count == 0 ? null : Canonical(all[^1]);
    }

    /// <summary>A matched number without separators, leading zeros or trailing fractional zeros.</summary>
    static string Canonical(Match number)
    {
        var integer = number.Groups["int"].Value.Replace(",", "", StringComparison.Ordinal).TrimStart('0');
        var fraction = number.Groups["frac"].Value.TrimEnd('0');
        var text = new StringBuilder();
        text.Append(integer.Length == 0 ? "0" : integer);
        if (fraction.Length > 0)
            text.Append('.').Append(fraction);
        var magnitude = text.ToString();
        return number.Groups["sign"].Success && magnitude != "0" ? "-" + magnitude : magnitude;
    }

    [GeneratedRegex(@"^\s*\(?\s*([A-Ja-j])\s*\)?\s*[.:]?\s*$")]
    private static partial Regex WholeLetter();

    [GeneratedRegex(@"\banswer\b(?:\s+is)?\s*[:\-]?\s*\(?([A-Ja-j])\)?(?![\p{L}\p{Nd}'’])", RegexOptions.IgnoreCase)]
    private static partial Regex AnnouncedLetter();

    [GeneratedRegex(@"(?<![\p{L}\p{Nd}])([A-J])(?![\p{L}\p{Nd}'’])")]
    private static partial Regex StandaloneCapital();

    [GeneratedRegex(@"(?<![\p{L}\p{Nd}])(yes|no|true|false)(?![\p{L}\p{Nd}])", RegexOptions.IgnoreCase)]
    private static partial Regex YesNoWord();

    /// <summary>An optional minus (not part of a range such as "3-4"), an optional "$", digits with optional thousands
    /// commas, an optional fraction.</summary>
    [GeneratedRegex(@"(?<sign>(?<![\p{L}\p{Nd}])-)?\$?(?<int>\d(?:[\d,]*\d)?)(?:\.(?<frac>\d+))?")]
    private static partial Regex Number();
}
