namespace LLGBM.Tasks;

/// <summary>One example of a prompt batch.</summary>
/// <param name="Index">The example's index in the task's training split.</param>
/// <param name="Prompt">The example's prompt.</param>
/// <param name="Answer">
/// The answer text in <see cref="PromptBatchMode.PromptsWithAnswers"/> mode: the reference answer of a generation
/// example, the text of the right choice of a multiple-choice example; null in <see cref="PromptBatchMode.PromptsOnly"/>.
/// </param>
public sealed record PromptBatchItem(int Index, string Prompt, string? Answer);

/// <summary>K distinct training examples of one task, drawn with a seed (see <see cref="PromptBatches"/>).</summary>
/// <param name="Task">The task's name.</param>
/// <param name="Seed">The seed the batch was drawn with.</param>
/// <param name="Mode">Whether the items carry answers.</param>
/// <param name="Items">The examples, in the order drawn.</param>
public sealed record PromptBatch(string Task, long Seed, PromptBatchMode Mode, IReadOnlyList<PromptBatchItem> Items)
{
    /// <summary>The prompts, in the order drawn.</summary>
    public IReadOnlyList<string> Prompts => [.. Items.Select(item => item.Prompt)];

    /// <summary>The examples' indices in the training split, in the order drawn.</summary>
    public IReadOnlyList<int> Indices => [.. Items.Select(item => item.Index)];
}
