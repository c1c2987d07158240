namespace LLGBM.Tasks;

/// <summary>
/// Draws prompt batches from a task's training split: K distinct examples chosen uniformly at random with a seed (a
/// partial Fisher–Yates shuffle of 0..N-1 driven by SplitMix64 seeded with the seed's bits; the first K entries are the
/// batch), never the first K of the file: the same seed gives the same batch on every machine, and every example is
/// equally likely to be drawn.
/// </summary>
public static class PromptBatches
{
    /// <summary>
    /// Draws <paramref name="k"/> distinct examples of <paramref name="task"/>'s training split with
    /// <paramref name="seed"/>. Every K-subset, in every order, is equally likely.
    /// </summary>
    /// <exception cref="LlgbmException"><paramref name="k"/> is below 1 or above the number of training examples.</exception>
    public static PromptBatch Sample(TaskData task, int k, long seed, PromptBatchMode mode = PromptBatchMode.PromptsOnly)
    {
        var train = task.Train;
        if (k < 1)
            throw new LlgbmException($"Task '{task.Spec.Name}': a prompt batch needs at least one example (K = {k}).");
        if (k > train.Count)
            throw new LlgbmException(
                $"Task '{task.Spec.Name}': a prompt batch of K = {k} distinct examples needs at least {k} training examples, " +
                $"but train.jsonl has {train.Count}.");
        var order = Enumerable.Range(0, train.Count).ToArray();
        var state = unchecked((ulong)seed);
        for (var i = 0; i < k; i++)
        {
            var j = i + (int)Below(ref state, (ulong)(train.Count - i));
            (order[i], order[j]) = (order[j], order[i]);
        }
        var items = new PromptBatchItem[k];
        for (var i = 0; i < k; i++)
        {
            var example = train[order[i]];
            items[i] = new PromptBatchItem(order[i], example.Prompt, mode == PromptBatchMode.PromptsWithAnswers ? AnswerText(example) : null);
        }
        return new PromptBatch(task.Spec.Name, seed, mode, items);
    }

    /// <summary>
    /// Draws <paramref name="count"/> independent batches of <paramref name="k"/> examples: batch i is
    /// <c>Sample(task, k, BatchSeed(seed, i), mode)</c>.
    /// </summary>
    /// <exception cref="LlgbmException"><paramref name="count"/> is negative, or <paramref name="k"/> is out of range.</exception>
    public static IReadOnlyList<PromptBatch> SampleMany(
        TaskData task, int k, int count, long seed, PromptBatchMode mode = PromptBatchMode.PromptsOnly)
    {
        if (count < 0)
            throw new LlgbmException($"Task '{task.Spec.Name}': the number of prompt batches cannot be negative ({count}).");
        return [.. Enumerable.Range(0, count).Select(i => Sample(task, k, BatchSeed(seed, i), mode))];
    }

    /// <summary>The seed of batch <paramref name="index"/> of <see cref="SampleMany"/>: a SplitMix64 mix of both.</summary>
    public static long BatchSeed(long seed, int index)
    {
        var state = unchecked((ulong)seed ^ (0xD1B54A32D192ED03UL * ((ulong)index + 1)));
        return unchecked((long)Next(ref state));
    }

    /// <summary>The answer text of an example: the answer, or for multiple choice the text of the right choice.</summary>
    public static string AnswerText(TaskExample example) =>
        example.Choices is { } choices && example.AnswerIndex is { } index && index >= 0 && index < choices.Count
            ? choices[index]
            : example.Answer;

    /// <summary>SplitMix64 (Steele, Lea and Flood 2014): the next 64 random bits.</summary>
    static ulong Next(ref ulong state)
    {
        unchecked
        {
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>
    /// A uniform integer in [0, bound): the next value modulo <paramref name="bound"/>, redrawn while it is among the top
    /// 2^64 mod bound values, so that no result is favoured.
    /// </summary>
    static ulong Below(ref ulong state, ulong bound)
    {
        var rejected = (0UL - bound) % bound;
        ulong value;
        do
            value = Next(ref state);
        while (value > ulong.MaxValue - rejected);
        return value % bound;
    }
}
