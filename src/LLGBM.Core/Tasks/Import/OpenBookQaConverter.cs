namespace LLGBM.Tasks.Import;

/// <summary>
/// OpenBookQA (<c>allenai/openbookqa</c>): <c>question_stem</c>, <c>choices</c> {<c>text</c>, <c>label</c>},
/// <c>answerKey</c> (the ARC layout). Multiple choice over the choice texts, with ARC's prompt:
/// <code>
/// Question: {question_stem}
/// A. {choice 1}
/// …
/// Answer:
/// </code>
/// </summary>
public sealed class OpenBookQaConverter : DatasetConverter
{
    /// <inheritdoc/>
    public override string Format => "openbookqa";

    /// <inheritdoc/>
    public override string Source => "allenai/openbookqa";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Answer the elementary science question using common knowledge.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row) => Checked(row, ArcConverter.ConvertLabelled(row, "question_stem"));
}
