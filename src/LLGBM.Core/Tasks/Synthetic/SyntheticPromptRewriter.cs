using System.Text.RegularExpressions;

namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Deterministic rewrites of the synthetic suite's condition texts, for measuring how a generator copes with prompts
/// worded or laid out unlike those it was trained on. A prompt is parsed by its domain's template (<c>047 =</c>,
/// <c>kqzm -></c>, <c>code bhad :</c>, <c>words: red cat pear ?</c>, <c>pick 34 71 12 55 :</c>; mixtures use their
/// components' templates) into its content, which every rewrite keeps verbatim, as it keeps the answer:
/// <list type="bullet">
/// <item><see cref="PromptTransform.Paraphrased"/>: the template's wording (the words and signs around the content,
/// which play the instruction's part in these prompts) replaced by one of <see cref="PhrasingCount"/> alternative
/// phrasings of the domain, content first or last as the phrasing reads, the answer after a space as in the original.</item>
/// <item><see cref="PromptTransform.Reformatted"/>: one of <see cref="LayoutCount"/> layouts that change the template,
/// the field order and the casing: <c>INPUT: … | OUTPUT: …</c>, the answer before the content (<c>… &lt;= …</c>), a
/// bracketed upper-case field name (<c>[CODE] … =&gt; …</c>), and question/answer lines.</item>
/// </list>
/// Which phrasing or layout an example gets depends only on its prompt (a stable hash), so a condition's examples mix
/// them and a rerun sees the same texts.
/// </summary>
public static partial class SyntheticPromptRewriter
{
    /// <summary>Alternative phrasings per domain.</summary>
    public const int PhrasingCount = 4;

    /// <summary>Layouts of <see cref="PromptTransform.Reformatted"/>.</summary>
    public const int LayoutCount = 4;

    /// <summary>A domain's prompt template: how to find the content, the field's name, and the alternative phrasings ({0} the content).</summary>
    sealed record Template(string Domain, Regex Pattern, string Field, string[] Phrasings);

    static readonly Template[] Templates =
    [
        new(ArithmeticTasks.Domain, ArithmeticPattern(), "number", ["{0} equals", "what is {0} ?", "take {0} , get", "number {0} gives"]),
        new(StringTasks.Domain, StringPattern(), "word", ["{0} becomes", "turn {0} into", "{0} maps to", "word {0} gives"]),
        new(CipherTasks.Domain, CipherPattern(), "code", ["cipher {0} =", "encode {0} as", "the code {0} reads", "secret {0} ->"]),
        new(KeywordTasks.Domain, KeywordPattern(), "words", ["list: {0} ?", "the words {0} -", "given {0} , answer", "items {0} :"]),
        new(ComparisonTasks.Domain, ComparisonPattern(), "numbers", ["choose {0} :", "which of {0} ?", "options {0} ->", "select among {0} ,"]),
    ];

    [GeneratedRegex(@"^(\d+) =$")]
    private static partial Regex ArithmeticPattern();

    [GeneratedRegex(@"^(\S+) ->$")]
    private static partial Regex StringPattern();

    [GeneratedRegex(@"^code (\S+) :$")]
    private static partial Regex CipherPattern();

    [GeneratedRegex(@"^words: (.+) \?$")]
    private static partial Regex KeywordPattern();

    [GeneratedRegex(@"^pick (.+) :$")]
    private static partial Regex ComparisonPattern();

    /// <summary>The domain whose template <paramref name="prompt"/> follows and its content.</summary>
    /// <exception cref="LlgbmException">The prompt follows no template of the suite.</exception>
    public static (string Domain, string Content) Parse(string prompt)
    {
        foreach (var template in Templates)
            if (template.Pattern.Match(prompt) is { Success: true } match)
                return (template.Domain, match.Groups[1].Value);
        throw new LlgbmException(
            $"Prompt rewrite: \"{prompt}\" follows none of the synthetic suite's prompt templates (\"047 =\", \"kqzm ->\", \"code bhad :\", " +
            $"\"words: red cat pear ?\", \"pick 34 71 12 55 :\").");
    }

    /// <summary>The phrasing or layout an example with <paramref name="prompt"/> gets: the 64-bit FNV-1a hash of its UTF-16 code units modulo
    /// <paramref name="count"/>.</summary>
    public static int VariantOf(string prompt, int count)
    {
        var h = 14695981039346656037UL;
        foreach (var c in prompt)
            h = unchecked((h ^ c) * 1099511628211UL);
        return (int)(h % (ulong)count);
    }

    /// <summary>The prompt in phrasing <paramref name="variant"/> (0 ≤ variant &lt; <see cref="PhrasingCount"/>) of its domain.</summary>
    public static string Paraphrase(string prompt, int variant)
    {
        CheckVariant(variant, PhrasingCount, "phrasing");
        var (domain, content) = Parse(prompt);
        return string.Format(System.Globalization.CultureInfo.InvariantCulture, Templates.First(t => t.Domain == domain).Phrasings[variant], content);
    }

    /// <summary>
    /// The condition text of a prompt and its answer (null: prompts only) in layout <paramref name="variant"/>
    /// (0 ≤ variant &lt; <see cref="LayoutCount"/>).
    /// </summary>
    public static string Reformat(string prompt, string? answer, int variant)
    {
        CheckVariant(variant, LayoutCount, "layout");
        var (domain, content) = Parse(prompt);
        var field = Templates.First(t => t.Domain == domain).Field;
        return (variant, answer) switch
        {
            (0, null) => $"INPUT: {content} | OUTPUT:",
            (0, _) => $"INPUT: {content} | OUTPUT: {answer}",
            (1, null) => $"? <= {content}",
            (1, _) => $"{answer} <= {content}",
            (2, null) => $"[{field.ToUpperInvariant()}] {content} =>",
            (2, _) => $"[{field.ToUpperInvariant()}] {content} => {answer}",
            (_, null) => $"Q: {content}\nA:",
            _ => $"Q: {content}\nA: {answer}",
        };
    }

    /// <summary>
    /// The condition text of one example under <paramref name="transform"/>: the prompt (and, when given, a space and
    /// the answer), paraphrased or reformatted in the variant <see cref="VariantOf"/> picks for the prompt.
    /// </summary>
    public static string Text(string prompt, string? answer, PromptTransform transform) => transform switch
    {
        PromptTransform.Original => answer is null ? prompt : prompt + PromptFormat.Continuation(answer),
        PromptTransform.Paraphrased => Paraphrase(prompt, VariantOf(prompt, PhrasingCount)) + (answer is null ? "" : PromptFormat.Continuation(answer)),
        PromptTransform.Reformatted => Reformat(prompt, answer, VariantOf(prompt, LayoutCount)),
        _ => throw new LlgbmException($"Prompt rewrite: unknown transform {transform}."),
    };

    static void CheckVariant(int variant, int count, string what)
    {
        if (variant < 0 || variant >= count)
            throw new LlgbmException($"Prompt rewrite: {what} {variant} does not exist; there are {count} (0 to {count - 1}).");
    }
}
