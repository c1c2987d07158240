using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Training;

/// <summary>Task examples as (prompt, completion) token sequences for completion-only training.</summary>
public static class CompletionExamples
{
    /// <summary>
    /// The prompt tokens of <paramref name="example"/> rendered with <paramref name="format"/>, and the completion
    /// tokens: <see cref="PromptFormat.Continuation"/> of the answer (for multiple choice, of the right choice's text)
    /// followed by the end-of-text token.
    /// </summary>
    public static (IReadOnlyList<int> Prompt, IReadOnlyList<int> Completion) Encode(
        ITokenizer tokenizer, TaskSpec spec, TaskExample example, PromptFormat format)
    {
        var answer = spec.Kind == TaskKind.MultipleChoice
            ? example.Choices![example.AnswerIndex ?? throw new LlgbmException($"Task {spec.Name}: a multiple-choice example has answer \"{example.Answer}\".")]
            : example.Answer;
        var completion = tokenizer.Encode(PromptFormat.Continuation(answer)).Append(tokenizer.EndOfTextId).ToArray();
        return (tokenizer.Encode(format.Prompt(spec, example)), completion);
    }
}
