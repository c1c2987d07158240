using System.Text.RegularExpressions;

namespace LLGBM.Tasks.Import;

/// <summary>
/// GSM8K (<c>openai/gsm8k</c>, config "main": <c>question</c>, <c>answer</c> = the worked solution ending in
/// "#### {number}"). Generation with <see cref="AnswerExtraction.FinalNumber"/> extraction; the example's answer is the
/// final number alone, without thousands separators ("1,200" becomes "1200"); the worked solution is dropped. Prompt:
/// <code>
/// Question: {question}
/// Answer:
/// </code>
/// </summary>
public sealed partial class Gsm8kConverter : DatasetConverter
{
    /// <inheritdoc/>
    public override string Format => "gsm8k";

    /// <inheritdoc/>
    public override string Source => "openai/gsm8k";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.Generation;

    /// <inheritdoc/>
    public override AnswerExtraction Extraction => AnswerExtraction.FinalNumber;

    /// <inheritdoc/>
    public override string Domain => "math";

    /// <inheritdoc/>
    public override string Instruction => "Solve the math word problem; give the final number.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row)
    {
        var question = row.Text("question");
        var solution = row.Text("answer");
        var marker = solution.LastIndexOf("####", StringComparison.Ordinal);
        if (marker < 0)
            throw row.Error("\"answer\" has no \"#### {final number}\" line.");
        var final = solution[(marker + 4)..].Trim().Replace(",", "", StringComparison.Ordinal);
        if (!Number().IsMatch(final))
            throw row.Error($"\"answer\" must end in \"#### {{number}}\", found \"#### {solution[(marker + 4)..].Trim()}\".");
        return Checked(row, new TaskExample { Prompt = $"Question: {question}\nAnswer:", Answer = final });
    }

    [GeneratedRegex(@"^-?\d+(\.\d+)?$")]
    private static partial Regex Number();
}
