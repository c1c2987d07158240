namespace LLGBM.Tasks.Import;

/// <summary>
/// PIQA (<c>ybisk/piqa</c>: <c>goal</c>, <c>sol1</c>, <c>sol2</c>, <c>label</c> 0 or 1). Multiple choice over the two
/// solutions, prompt as in lm-evaluation-harness:
/// <code>
/// Question: {goal}
/// Answer:
/// </code>
/// </summary>
public sealed class PiqaConverter : DatasetConverter
{
    /// <inheritdoc/>
    public override string Format => "piqa";

    /// <inheritdoc/>
    public override string Source => "ybisk/piqa";

    /// <inheritdoc/>
    public override TaskKind Kind => TaskKind.MultipleChoice;

    /// <inheritdoc/>
    public override string Instruction => "Choose the better way to reach the goal.";

    /// <inheritdoc/>
    public override TaskExample Convert(DatasetRow row)
    {
        var goal = row.Text("goal");
        string[] choices = [row.Text("sol1"), row.Text("sol2")];
        var answer = LetterOfIndex(row, row.Integer("label"), 2, "label");
        return Checked(row, new TaskExample { Prompt = $"Question: {goal}\nAnswer:", Choices = choices, Answer = answer });
    }
}
