using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Evaluation;

/// <summary>
/// Choice accuracy of a multiple-choice task: the log-likelihood of each choice's continuation
/// (<see cref="PromptFormat.Continuation"/>) given the prompt, optionally length-normalised; the most likely choice
/// is the prediction.
/// </summary>
public static class MultipleChoiceEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="model"/> on the test examples of a multiple-choice task. Context and continuation are
    /// encoded separately and concatenated; every (example, choice) pair is one sequence of a scoring batch
    /// (<see cref="ContinuationScorer"/>). Ties go to the earlier choice. Progress counts examples whose every choice
    /// is scored.
    /// </summary>
    public static TaskEvaluation Evaluate(IEvaluatedModel model, ITokenizer tokenizer, TaskData task, EvaluationOptions? options = null)
    {
        options = (options ?? new EvaluationOptions()).Validate();
        var spec = task.Spec;
        if (spec.Kind != TaskKind.MultipleChoice)
            throw new LlgbmException($"Task {spec.Name} is {spec.Kind}, not a multiple-choice task.");
        var examples = TaskEvaluator.Examples(task, options);
        for (var i = 0; i < examples.Count; i++)
            if (examples[i].Choices is not { Count: > 0 } choices || examples[i].AnswerIndex is not { } answer || answer < 0 || answer >= choices.Count)
                throw new LlgbmException(
                    $"Task {spec.Name}, test example {i}: a multiple-choice example needs choices and an answer letter among them, " +
                    $"found answer \"{examples[i].Answer}\" and {examples[i].Choices?.Count ?? 0} choices.");

        // Requests grouped by example, longest examples first, so that a batch holds sequences of similar length.
        var contexts = examples.Select(e => TaskEvaluator.EncodePrompt(tokenizer, options.Format.Prompt(spec, e))).ToArray();
        var continuations = examples.Select(e => e.Choices!.Select(c => tokenizer.Encode(PromptFormat.Continuation(c))).ToArray()).ToArray();
        for (var i = 0; i < examples.Count; i++)
            TaskEvaluator.CheckLength(model, task, i, contexts[i].Count + continuations[i].Max(c => c.Count), "the prompt and its longest choice");
        var order = Enumerable.Range(0, examples.Count)
            .OrderByDescending(i => contexts[i].Count + continuations[i].Max(c => c.Count)).ThenBy(i => i).ToArray();
        var requests = new List<ContinuationRequest>();
        var firstRequest = new int[examples.Count];
        var examplesDoneAfter = new List<int>();
        foreach (var i in order)
        {
            firstRequest[i] = requests.Count;
            requests.AddRange(continuations[i].Select(c => new ContinuationRequest(contexts[i], c)));
            examplesDoneAfter.Add(requests.Count);
        }
        Action<int, int>? progress = options.Progress is { } report
            ? (done, _) => report(examplesDoneAfter.TakeWhile(end => end <= done).Count(), examples.Count)
            : null;
        var logLikelihoods = ContinuationScorer.LogLikelihoods(model, requests, options.BatchSize, options.Padding, progress);

        var predictions = new ExamplePrediction[examples.Count];
        for (var i = 0; i < examples.Count; i++)
        {
            var choices = examples[i].Choices!;
            var scores = new double[choices.Count];
            for (var c = 0; c < choices.Count; c++)
                scores[c] = logLikelihoods[firstRequest[i] + c] / Length(
                    options.Normalization, continuations[i][c].Count, PromptFormat.Continuation(choices[c]));
            var best = 0;
            for (var c = 1; c < scores.Length; c++)
                if (scores[c] > scores[best])
                    best = c;
            var answer = examples[i].AnswerIndex!.Value;
            predictions[i] = new ExamplePrediction
            {
                Index = i,
                Prediction = Letter(best),
                Reference = Letter(answer),
                Correct = best == answer,
                ChoiceScores = scores,
            };
        }
        return TaskEvaluator.Summarise(model, task, options, predictions);
    }

    /// <summary>The length a continuation's log-likelihood is divided by (1 without normalisation).</summary>
    public static double Length(LengthNormalization normalization, int tokens, string continuation) => normalization switch
    {
        LengthNormalization.None => 1,
        LengthNormalization.Tokens => tokens,
        LengthNormalization.Characters => continuation.Length,
        LengthNormalization.Bytes => System.Text.Encoding.UTF8.GetByteCount(continuation),
        _ => throw new LlgbmException($"Unknown length normalisation {normalization}."),
    };

    static string Letter(int index) => ((char)('A' + index)).ToString();
}
