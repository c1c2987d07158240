using LLGBM.Tasks;

namespace LLGBM.Conditioning;

/// <summary>
/// Builds conditions for one experiment: prompt batches of K distinct training examples (<see cref="PromptBatches"/>)
/// in the experiment's mode, encoded by its encoder. Training draws a fresh batch per task and step
/// (<see cref="ForStep"/>), evaluation several independent batches per task (<see cref="ForEvaluation"/>); every draw is
/// seeded by the experiment's seed, so a rerun sees the same batches. A condition is a batch, never a single prompt:
/// fewer than <see cref="MinimumK"/> distinct texts are refused.
/// </summary>
public sealed class ConditionBuilder
{
    /// <summary>The fewest distinct texts a condition may have.</summary>
    public const int MinimumK = 2;

    /// <summary>The number the evaluation seeds are derived with, apart from every training step's.</summary>
    const long EvaluationStream = -1;

    /// <summary>A builder encoding with <paramref name="encoder"/> (not owned) batches of <paramref name="k"/> examples in <paramref name="mode"/>.</summary>
    /// <exception cref="LlgbmException"><paramref name="k"/> is below <see cref="MinimumK"/>.</exception>
    public ConditionBuilder(ISentenceEncoder encoder, int k, PromptBatchMode mode, long seed)
    {
        if (k < MinimumK)
            throw new LlgbmException(
                $"Conditions: K = {k}; a condition is a batch of at least {MinimumK} prompts of a task, never a single prompt.");
        Encoder = encoder;
        K = k;
        Mode = mode;
        Seed = seed;
    }

    /// <summary>The encoder.</summary>
    public ISentenceEncoder Encoder { get; }

    /// <summary>Examples per condition.</summary>
    public int K { get; }

    /// <summary>Prompts only, or prompts with answers.</summary>
    public PromptBatchMode Mode { get; }

    /// <summary>The experiment's seed.</summary>
    public long Seed { get; }

    /// <summary>
    /// The text encoded for an example: its prompt; in <see cref="PromptBatchMode.PromptsWithAnswers"/> mode the prompt,
    /// a space (unless the prompt ends in white space) and the answer.
    /// </summary>
    public static string TextOf(PromptBatchItem item) =>
        item.Answer is not { } answer ? item.Prompt
        : item.Prompt.Length > 0 && char.IsWhiteSpace(item.Prompt[^1]) ? item.Prompt + answer
        : item.Prompt + " " + answer;

    /// <summary>The seed of the batch of <paramref name="task"/> at training step <paramref name="step"/>.</summary>
    public static long StepSeed(long seed, string task, long step)
    {
        if (step < 0)
            throw new LlgbmException($"Conditions: training step {step} is negative.");
        return SplitMix64.Derive(seed, task, step);
    }

    /// <summary>The seed from which the evaluation batches of <paramref name="task"/> are drawn (apart from every training step's).</summary>
    public static long EvaluationSeed(long seed, string task) => SplitMix64.Derive(seed, task, EvaluationStream);

    /// <summary>Encodes <paramref name="batch"/> (its own mode decides the texts).</summary>
    /// <exception cref="LlgbmException">The batch has fewer than <see cref="MinimumK"/> distinct texts, or the encoder returns the wrong shape.</exception>
    public Condition Build(PromptBatch batch)
    {
        var texts = batch.Items.Select(TextOf).ToList();
        var distinct = texts.Distinct(StringComparer.Ordinal).Count();
        if (distinct < MinimumK)
            throw new LlgbmException(
                $"Condition of task {batch.Task}: the batch holds {distinct} distinct text(s); a condition is a batch of at least {MinimumK} different " +
                $"prompts.");
        var encodings = Encoder.Encode(texts);
        if (encodings.dim() != 2 || encodings.shape[0] != texts.Count || encodings.shape[1] != Encoder.Dimension)
        {
            var shape = string.Join(", ", encodings.shape);
            encodings.Dispose();
            throw new LlgbmException(
                $"Encoder {Encoder.Name}: {texts.Count} texts gave encodings of shape [{shape}], expected [{texts.Count}, {Encoder.Dimension}].");
        }
        return new Condition(batch, texts, encodings);
    }

    /// <summary>The condition of <paramref name="task"/> at training step <paramref name="step"/>: a fresh batch drawn with <see cref="StepSeed"/>.</summary>
    public Condition ForStep(TaskData task, long step) =>
        Build(PromptBatches.Sample(task, K, StepSeed(Seed, task.Spec.Name, step), Mode));

    /// <summary>
    /// <paramref name="count"/> independent conditions of <paramref name="task"/> for evaluation (at least 2): batches
    /// drawn by <see cref="PromptBatches.SampleMany"/> from <see cref="EvaluationSeed"/>. The caller disposes them.
    /// </summary>
    public IReadOnlyList<Condition> ForEvaluation(TaskData task, int count)
    {
        if (count < 2)
            throw new LlgbmException(
                $"Task {task.Spec.Name}: evaluation averages over several independently sampled conditions; {count} asked for, at least 2 needed.");
        var batches = PromptBatches.SampleMany(task, K, count, EvaluationSeed(Seed, task.Spec.Name), Mode);
        var conditions = new List<Condition>(count);
        try
        {
            foreach (var batch in batches)
                conditions.Add(Build(batch));
            return conditions;
        }
        catch
        {
            foreach (var c in conditions)
                c.Dispose();
            throw;
        }
    }
}
