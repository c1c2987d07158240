namespace LLGBM.Tasks;

/// <summary>
/// How an example becomes model input. The prompt text is the example's prompt, preceded by the task's instruction
/// on its own line when <see cref="Instructed"/> is set. The answer (generation) or each choice (multiple choice)
/// follows the prompt after one space; a generated answer ends at the end-of-text token.
/// </summary>
public sealed record PromptFormat
{
    /// <summary>Prefix the task's instruction (when it has one).</summary>
    public bool Instructed { get; init; }

    /// <summary>The bare prompt: only an adapter (or the prompt itself) can tell which task is meant.</summary>
    public static PromptFormat Bare { get; } = new();

    /// <summary>The instruction line, then the prompt.</summary>
    public static PromptFormat WithInstruction { get; } = new() { Instructed = true };

    /// <summary>The text the model reads before answering.</summary>
    public string Prompt(TaskSpec spec, TaskExample example) =>
        Instructed && !string.IsNullOrEmpty(spec.Instruction) ? $"{spec.Instruction}\n{example.Prompt}" : example.Prompt;

    /// <summary>The text that follows the prompt: an answer or a choice.</summary>
    public static string Continuation(string answerOrChoice) => " " + answerOrChoice;
}
