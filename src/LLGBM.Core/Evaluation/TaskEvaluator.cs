using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Evaluation;

/// <summary>
/// Evaluates a model on a task's test examples: exact match after answer extraction for generation tasks
/// (<see cref="GenerationEvaluator"/>), choice accuracy by log-likelihood for multiple-choice tasks
/// (<see cref="MultipleChoiceEvaluator"/>). Deterministic: the same model, tokenizer, task and options give the same result.
/// </summary>
public static class TaskEvaluator
{
    /// <summary>Evaluates <paramref name="model"/> on <paramref name="task"/> as its kind asks.</summary>
    public static TaskEvaluation Evaluate(IEvaluatedModel model, ITokenizer tokenizer, TaskData task, EvaluationOptions? options = null) =>
        task.Spec.Kind switch
        {
            TaskKind.Generation => GenerationEvaluator.Evaluate(model, tokenizer, task, options),
            TaskKind.MultipleChoice => MultipleChoiceEvaluator.Evaluate(model, tokenizer, task, options),
            var kind => throw new LlgbmException($"Task {task.Spec.Name}: unknown task kind {kind}."),
        };

    /// <summary>The evaluated examples: the test examples, the first <see cref="EvaluationOptions.Limit"/> of them when set.</summary>
    internal static IReadOnlyList<TaskExample> Examples(TaskData task, EvaluationOptions options) =>
        options.Limit is { } limit ? task.Test.Take(limit).ToArray() : task.Test;

    /// <summary>The ids of a prompt; an empty prompt becomes the end-of-text token, so that the answer has something to follow.</summary>
    internal static IReadOnlyList<int> EncodePrompt(ITokenizer tokenizer, string prompt) =>
        tokenizer.Encode(prompt) is { Count: > 0 } ids ? ids : [tokenizer.EndOfTextId];

    /// <summary>
    /// Refuses the evaluation when test example <paramref name="index"/> needs more positions
    /// (<paramref name="tokens"/>: its prompt and the longest continuation or new tokens) than the model's
    /// <c>max_position_embeddings</c>, naming the task and the example.
    /// </summary>
    internal static void CheckLength(IEvaluatedModel model, TaskData task, int index, int tokens, string what)
    {
        var limit = model.Config.MaxPositionEmbeddings;
        if (tokens > limit)
            throw new LlgbmException(
                $"Task {task.Spec.Name}, test example {index}: {what} take {tokens} tokens, more than the max_position_embeddings {limit} of the model's " +
                $"config.json; shorten the example.");
    }

    /// <summary>The result record for the given predictions.</summary>
    internal static TaskEvaluation Summarise(IEvaluatedModel model, TaskData task, EvaluationOptions options, IReadOnlyList<ExamplePrediction> predictions)
    {
        var correct = predictions.Count(p => p.Correct);
        return new TaskEvaluation
        {
            Task = task.Spec.Name,
            Domain = task.Spec.Domain,
            Model = model.Name,
            Adapter = model.Adapter,
            Format = PromptFormatNames.Name(options.Format),
            Metric = task.Spec.Metric,
            Accuracy = predictions.Count == 0 ? 0 : (double)correct / predictions.Count,
            Correct = correct,
            N = predictions.Count,
            Predictions = options.KeepPredictions ? predictions : null,
        };
    }
}
