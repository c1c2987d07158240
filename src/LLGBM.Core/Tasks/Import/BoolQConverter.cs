namespace LLGBM.Tasks.Import;

/// <summary>
/// BoolQ (<c>google/boolq</c>: <c>question</c>, <c>passage</c>, <c>answer</c> true/false; the SuperGLUE copy's
/// <c>label</c> 0/1 is read when <c>answer</c> is absent). Imported as multiple choice over ["no", "yes"] (A = no,
/// B = yes), as lm-evaluation-harness scores it, rather than as generation with yes/no extraction: a choice is scored
/// by likelihood, so no sampling or answer parsing is involved. Prompt (a "?" is added when the question lacks one):
/// <code>
/// {passage}
/// Question: {question}?
/// Answer:
/// </code>
/// </summary>
public sealed class BoolQConverter : DatasetConverter
{
    static readonly string[] NoYes = ["no", "yes"];

    /// <inheritdoc/>
    public override string Format => "boolq";

    /// <inheritdoc/>
    public override string Source => "google/boolq";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Answer the question about the passage with yes or no.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row)
    {
        var passage = row.Text("passage");
        var question = row.Text("question");
        if (!question.EndsWith('?'))
            question += "?";
        var yes = row.Find("answer") is not null
            ? row.Boolean("answer")
            : LetterOfIndex(row, row.Integer("label"), 2, "label") == "B";
        return Checked(row, new TaskExample
        {
            Prompt = $"{passage}\nQuestion: {question}\nAnswer:",
            Choices = NoYes,
            Answer = yes ? "B" : "A",
        });
    }
}
