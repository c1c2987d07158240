namespace LLGBM.Tasks.Import;

/// <summary>
/// WinoGrande (<c>allenai/winogrande</c>: <c>sentence</c> with one "_", <c>option1</c>, <c>option2</c>, <c>answer</c>
/// "1" or "2"). Multiple choice between the two filled-in sentences: the prompt is the sentence up to the blank, and
/// choice k is option k followed by the rest of the sentence, so that prompt + " " + choice is the sentence with
/// option k filled in and the two choices differ only in the option. Example: "Sarah was a much better surgeon than
/// Maria so _ always got the harder cases." gives the prompt "Sarah was a much better surgeon than Maria so" and the
/// choices "Sarah always got the harder cases." and "Maria always got the harder cases.". When the blank opens the
/// sentence, the prompt is "Complete the sentence:" instead.
/// </summary>
public sealed class WinoGrandeConverter : DatasetConverter
{
    /// <summary>The prompt used when the blank is the first word of the sentence.</summary>
    public const string LeadingBlankPrompt = "Complete the sentence:";

    /// <inheritdoc/>
    public override string Format => "winogrande";

    /// <inheritdoc/>
    public override string Source => "allenai/winogrande";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Fill in the blank with the right option.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row)
    {
        var sentence = row.Text("sentence");
        var blank = sentence.IndexOf('_');
        if (blank < 0 || sentence.IndexOf('_', blank + 1) >= 0)
            throw row.Error($"\"sentence\" must hold exactly one blank \"_\", found {sentence.Count(c => c == '_')}.");
        var prefix = sentence[..blank].TrimEnd();
        var rest = sentence[(blank + 1)..];
        string[] choices = [row.Text("option1") + rest, row.Text("option2") + rest];
        var answer = LetterOfIndex(row, row.Integer("answer"), 2, "answer", offset: 1);
        return Checked(row, new TaskExample
        {
            Prompt = prefix.Length > 0 ? prefix : LeadingBlankPrompt,
            Choices = [.. choices.Select(c => c.TrimEnd())],
            Answer = answer,
        });
    }
}
