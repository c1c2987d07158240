using LLGBM.Generators;
using LLGBM.Tasks;

namespace LLGBM.Experiments;

/// <summary>The condition texts of a two-task mixture: prompts (with answers) drawn from both components.</summary>
public static class MixtureCondition
{
    /// <summary>
    /// K condition texts for the mixture of <paramref name="first"/> and <paramref name="second"/>: ⌈K/2⌉ training
    /// examples of the first and ⌊K/2⌋ of the second, each drawn with <see cref="PromptBatches.Sample"/> and
    /// <paramref name="seed"/>, interleaved one by one (first, second, first, …) and written as a generator reads them
    /// (<see cref="ConditionBank.Text"/>).
    /// </summary>
    public static IReadOnlyList<string> Texts(TaskData first, TaskData second, int k, long seed, PromptBatchMode mode)
    {
        if (k < 2)
            throw new LlgbmException($"Mixture condition: K = {k}; a condition of both tasks needs at least 2 examples.");
        var a = PromptBatches.Sample(first, (k + 1) / 2, seed, mode).Items.Select(ConditionBank.Text).ToList();
        var b = PromptBatches.Sample(second, k / 2, seed, mode).Items.Select(ConditionBank.Text).ToList();
        return TaskMixture.Interleave(a, b);
    }

    /// <summary>K condition texts of one task (<see cref="PromptBatches.Sample"/> with <paramref name="seed"/>).</summary>
    public static IReadOnlyList<string> Texts(TaskData task, int k, long seed, PromptBatchMode mode) =>
        [.. PromptBatches.Sample(task, k, seed, mode).Items.Select(ConditionBank.Text)];
}
