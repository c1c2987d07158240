namespace LLGBM.Tasks;

/// <summary>What a prompt batch carries for each example.</summary>
public enum PromptBatchMode
{
    /// <summary>The prompts alone (the condition of a prompt-conditioned generator, as in Drag-and-Drop LLMs).</summary>
    PromptsOnly,

    /// <summary>Each prompt with its answer (the text of the right choice for multiple choice).</summary>
    PromptsWithAnswers,
}
