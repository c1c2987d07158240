using LLGBM.Tasks;

namespace LLGBM.Delta;

/// <summary>
/// One design of the delta activation for the probe-design study: a probe set and a <see cref="DeltaSpec"/>, named and
/// grouped by the question it answers (probe count, probe source, layers, pooling).
/// </summary>
/// <param name="Name">A short unique name, e.g. <c>generic-10</c> or <c>layers-2,4,-1-mean</c>.</param>
/// <param name="Group">The design question: <c>probe count</c>, <c>probe source</c>, <c>layers</c> or <c>pooling</c>.</param>
/// <param name="Description">What the variant measures, in words.</param>
/// <param name="Probes">Its probe set.</param>
/// <param name="Spec">Its delta spec.</param>
public sealed record ProbeDesignVariant(string Name, string Group, string Description, ProbeSet Probes, DeltaSpec Spec)
{
    /// <summary>The name of the default design (5 generic probes, final-norm state, last token).</summary>
    public const string DefaultName = "generic-5";

    /// <summary>
    /// The standard variants for a base model of <paramref name="layerCount"/> layers: the default design
    /// (<see cref="DefaultName"/>); 1, 10 and 20 generic probes; <paramref name="perTask"/> training prompts of every
    /// task in <paramref name="tasks"/> as probes (drawn with <paramref name="probeSeed"/>, see
    /// <see cref="ProbeSet.FromTasks"/>); the hidden states after the middle layer, after the last layer and after the
    /// final norm, concatenated or averaged; and mean pooling over real tokens. Every variant but the default changes
    /// one thing of the default.
    /// </summary>
    /// <exception cref="LlgbmException">No tasks, fewer than 2 layers, or <paramref name="perTask"/> below 1.</exception>
    public static IReadOnlyList<ProbeDesignVariant> Standard(IReadOnlyList<TaskData> tasks, int layerCount, int perTask = 1, long probeSeed = 0)
    {
        if (layerCount < 2)
            throw new LlgbmException($"Probe design: the layer variants need a model of at least 2 layers (found {layerCount}).");
        if (perTask < 1)
            throw new LlgbmException($"Probe design: task probes need at least 1 prompt per task (found {perTask}).");
        if (tasks.Count == 0)
            throw new LlgbmException("Probe design: no tasks to draw task probes from.");
        var generic = ProbeSet.Generic(5);
        int[] layers = [layerCount / 2, layerCount, -1];
        var layerText = string.Join(",", layers);
        var taskProbes = ProbeSet.FromTasks(tasks, perTask, probeSeed);
        return
        [
            new(DefaultName, "default", "5 generic probes, final-norm state of the last real token (the default)", generic, DeltaSpec.Default),
            .. new[] { 1, 10, 20 }.Select(n => new ProbeDesignVariant(
                $"generic-{n}", "probe count", $"{n} generic probe{(n == 1 ? "" : "s")}, final-norm state, last token",
                ProbeSet.Generic(n), DeltaSpec.Default)),
            new(taskProbes.Name, "probe source",
                $"{perTask} training prompt{(perTask == 1 ? "" : "s")} of each of the {tasks.Count} tasks ({taskProbes.Count} probes), " +
                $"final-norm state, last token",
                taskProbes, DeltaSpec.Default),
            new($"layers-{layerText}-concat", "layers",
                $"5 generic probes, hidden states {layerText} (after layer {layerCount / 2}, after layer {layerCount}, final norm) concatenated, last token",
                generic, new DeltaSpec { Layers = layers, Combination = LayerCombination.Concatenate }),
            new($"layers-{layerText}-mean", "layers",
                $"5 generic probes, hidden states {layerText} averaged, last token",
                generic, new DeltaSpec { Layers = layers, Combination = LayerCombination.Average }),
            new("pool-mean", "pooling", "5 generic probes, final-norm state averaged over real tokens",
                generic, new DeltaSpec { Pooling = DeltaPooling.MeanOverRealTokens }),
        ];
    }
}
