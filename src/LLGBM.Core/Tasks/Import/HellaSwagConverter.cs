using System.Text.RegularExpressions;

namespace LLGBM.Tasks.Import;

/// <summary>
/// HellaSwag (<c>Rowan/hellaswag</c>: <c>activity_label</c>, <c>ctx_a</c> and <c>ctx_b</c> or <c>ctx</c>,
/// <c>endings</c>, <c>label</c> as a string "0".."3" or an integer). Multiple choice over the endings, prepared as
/// lm-evaluation-harness does: the context is <c>ctx_a</c> + " " + <c>ctx_b</c> with its first letter capitalised (or
/// <c>ctx</c> when <c>ctx_a</c> is absent); the prompt is "{activity_label}: {context}" (just the context without a
/// label); in prompt and endings " [title]" becomes ". ", other bracketed WikiHow markers ("[header]", "[step]") are
/// removed and double spaces collapsed. The endings continue the prompt directly.
/// </summary>
public sealed partial class HellaSwagConverter : DatasetConverter
{
    /// <inheritdoc/>
    public override string Format => "hellaswag";

    /// <inheritdoc/>
    public override string Source => "Rowan/hellaswag";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Choose the most plausible continuation.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row)
    {
        string context;
        if (row.OptionalText("ctx_a") is { } a)
            context = row.OptionalText("ctx_b") is { } b ? $"{a} {char.ToUpperInvariant(b[0])}{b[1..]}" : a;
        else
            context = row.Text("ctx");
        var prompt = row.OptionalText("activity_label") is { } activity ? $"{activity}: {context}" : context;
        var endings = row.TextList("endings").Select(Clean).ToArray();
        var answer = LetterOfIndex(row, row.Integer("label"), endings.Length, "label");
        return Checked(row, new TaskExample { Prompt = Clean(prompt), Choices = endings, Answer = answer });
    }

    /// <summary>lm-evaluation-harness's HellaSwag preprocessing (see the class summary).</summary>
    public static string Clean(string text)
    {
        text = text.Trim().Replace(" [title]", ". ", StringComparison.Ordinal);
        text = Bracketed().Replace(text, "");
        return text.Replace("  ", " ", StringComparison.Ordinal).Trim();
    }

    [GeneratedRegex(@"\[.*?\]")]
    private static partial Regex Bracketed();
}
