using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Evaluation;

/// <summary>
/// Exact-match evaluation of a generation task: greedy decoding with the KV cache after each prompt, then answer
/// extraction (<see cref="AnswerExtractor"/>) on the completion and on the reference.
/// </summary>
public static class GenerationEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="model"/> on the test examples of a generation task. Each prompt
    /// (<see cref="PromptFormat.Prompt"/>) is continued greedily until the end-of-text token, a stop token (see
    /// <see cref="StopTokens"/>) or <see cref="MaxNewTokens"/> tokens; the completion, without the one space that
    /// starts every answer (<see cref="PromptFormat.Continuation"/>), is matched against the reference. Prompts are
    /// decoded in batches of similar length; the result does not depend on the order of examples.
    /// </summary>
    public static TaskEvaluation Evaluate(IEvaluatedModel model, ITokenizer tokenizer, TaskData task, EvaluationOptions? options = null)
    {
        options = (options ?? new EvaluationOptions()).Validate();
        var spec = task.Spec;
        if (spec.Kind != TaskKind.Generation)
            throw new LlgbmException($"Task {spec.Name} is {spec.Kind}, not a generation task.");
        var examples = TaskEvaluator.Examples(task, options);
        var prompts = examples.Select(e => TaskEvaluator.EncodePrompt(tokenizer, options.Format.Prompt(spec, e))).ToArray();
        var generation = new GenerationOptions
        {
            MaxNewTokens = MaxNewTokens(tokenizer, examples, options),
            StopTokens = StopTokens(tokenizer, spec, options),
            PadTokenId = tokenizer.EndOfTextId,
        };
        for (var i = 0; i < prompts.Length; i++)
            TaskEvaluator.CheckLength(model, task, i, prompts[i].Count + generation.MaxNewTokens, $"the prompt and up to {generation.MaxNewTokens} new tokens");
        var mode = AnswerExtractor.ModeFor(spec);

        using var evaluation = model.EvaluationMode();
        var order = Enumerable.Range(0, examples.Count).OrderByDescending(i => prompts[i].Count).ThenBy(i => i).ToArray();
        var predictions = new ExamplePrediction[examples.Count];
        for (var start = 0; start < order.Length; start += options.BatchSize)
        {
            var rows = order.Skip(start).Take(options.BatchSize).ToArray();
            var generated = TextGeneration.Generate(
                model.Forward, model.Config.NumHiddenLayers, model.Device, rows.Select(i => prompts[i]).ToArray(), generation);
            for (var r = 0; r < rows.Length; r++)
            {
                var example = examples[rows[r]];
                var completion = Completion(DecodeLenient(tokenizer, generated[r]));
                predictions[rows[r]] = new ExamplePrediction
                {
                    Index = rows[r],
                    Prediction = AnswerExtractor.Extract(mode, completion),
                    Reference = AnswerExtractor.Extract(mode, example.Answer),
                    Correct = AnswerExtractor.Matches(spec, example, completion),
                    Completion = completion,
                };
            }
            options.Progress?.Invoke(start + rows.Length, examples.Count);
        }
        return TaskEvaluator.Summarise(model, task, options, predictions);
    }

    /// <summary>
    /// The decoding limit: <see cref="EvaluationOptions.MaxNewTokens"/> when set, else the token count of the longest
    /// reference continuation (" " + answer) among <paramref name="examples"/> plus <see cref="EvaluationOptions.MaxNewTokensMargin"/>.
    /// </summary>
    public static int MaxNewTokens(ITokenizer tokenizer, IReadOnlyList<TaskExample> examples, EvaluationOptions options) =>
        options.MaxNewTokens
        ?? examples.Select(e => tokenizer.Encode(PromptFormat.Continuation(e.Answer)).Count).DefaultIfEmpty(0).Max() + options.MaxNewTokensMargin;

    /// <summary>
    /// The tokens that end an answer: the end-of-text token, the newline token when asked for
    /// (<see cref="EvaluationOptions.StopAtNewline"/>, by default for first-line answers) and the tokenizer encodes
    /// "\n" as a single token, and <see cref="EvaluationOptions.ExtraStopTokens"/>.
    /// </summary>
    public static IReadOnlyCollection<int> StopTokens(ITokenizer tokenizer, TaskSpec spec, EvaluationOptions options)
    {
        var stops = new SortedSet<int> { tokenizer.EndOfTextId };
        if (options.StopAtNewline ?? AnswerExtractor.ModeFor(spec) == AnswerExtraction.FirstLine)
        {
            var newline = tokenizer.Encode("\n");
            if (newline.Count == 1)
                stops.Add(newline[0]);
        }
        stops.UnionWith(options.ExtraStopTokens);
        return stops.ToArray();
    }

    /// <summary>The decoded new tokens without the single space that starts a continuation.</summary>
    static string Completion(string decoded) => decoded.StartsWith(' ') ? decoded[1..] : decoded;

    /// <summary>
    /// The text of generated ids. A model can emit an id its tokenizer cannot decode (a vocabulary row no token uses,
    /// which an untrained or adapted model may still pick); such an id becomes U+FFFD and the rest is decoded as usual, so
    /// the example is scored as the completion reads instead of failing the evaluation.
    /// </summary>
    internal static string DecodeLenient(Text.ITokenizer tokenizer, IReadOnlyList<int> ids)
    {
        try
        {
            return tokenizer.Decode(ids);
        }
        catch (LlgbmException)
        {
            var text = new System.Text.StringBuilder();
            var run = new List<int>();
            foreach (var id in ids)
            {
                try
                {
                    tokenizer.Decode([id]);
                    run.Add(id);
                }
                catch (LlgbmException)
                {
                    text.Append(tokenizer.Decode(run)).Append('\uFFFD');
                    run.Clear();
                }
            }
            return text.Append(tokenizer.Decode(run)).ToString();
        }
    }
}
