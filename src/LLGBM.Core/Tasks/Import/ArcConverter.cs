namespace LLGBM.Tasks.Import;

/// <summary>
/// ARC-Easy and ARC-Challenge (<c>allenai/ai2_arc</c>): <c>question</c>, <c>choices</c> {<c>text</c>: [...],
/// <c>label</c>: [...]}, <c>answerKey</c>. Labels are "A".."E" or, in some rows, "1".."5"; either way the choices are
/// lettered A, B, … by position. Multiple choice over the choice texts, prompt:
/// <code>
/// Question: {question}
/// A. {choice 1}
/// B. {choice 2}
/// …
/// Answer:
/// </code>
/// </summary>
public sealed class ArcConverter(string format, string subset) : DatasetConverter
{
    /// <summary>ARC-Easy.</summary>
    public static ArcConverter Easy { get; } = new("arc-easy", "ARC-Easy");

    /// <summary>ARC-Challenge.</summary>
    public static ArcConverter Challenge { get; } = new("arc-challenge", "ARC-Challenge");

    /// <inheritdoc/>
    public override string Format => format;

    /// <inheritdoc/>
    public override string Source => $"allenai/ai2_arc ({subset})";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Answer the grade-school science question.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row) => Checked(row, ConvertLabelled(row, "question"));

    /// <summary>The ARC layout with the question in <paramref name="questionField"/> (OpenBookQA shares it).</summary>
    internal static TaskExample ConvertLabelled(DatasetRow row, string questionField)
    {
        var question = row.Text(questionField);
        var texts = row.TextList("choices.text");
        var labels = row.TextList("choices.label");
        if (labels.Count != texts.Count)
            throw row.Error($"\"choices.text\" has {texts.Count} items but \"choices.label\" has {labels.Count}.");
        var answer = LetterOfLabel(row, labels, row.Text("answerKey"), "answerKey");
        return new TaskExample { Prompt = QuestionWithChoices(question, texts), Choices = texts, Answer = answer };
    }
}
