namespace LLGBM.Generators;

/// <summary>
/// How much a generator's adapters depend on the condition. <see cref="Ratio"/> is the mean weight-space distance
/// between adapters generated for different tasks divided by the mean distance between adapters generated for the same
/// task from different prompt batches: well above 1 when the generator tells tasks apart, about 1 when it ignores the
/// task. <see cref="RelativeSpread"/> is the across-task distance divided by the mean adapter norm: about 0 when the
/// generator emits the same adapter whatever the condition (collapse to one adapter, such as the average teacher).
/// </summary>
/// <param name="Across">Mean ‖ΔW_i − ΔW_j‖ over pairs from different tasks.</param>
/// <param name="Within">Mean ‖ΔW_i − ΔW_j‖ over pairs from the same task.</param>
/// <param name="Ratio">Across / Within (NaN when Within is 0).</param>
/// <param name="MeanNorm">Mean ‖ΔW_i‖.</param>
/// <param name="RelativeSpread">Across / MeanNorm (NaN when MeanNorm is 0).</param>
public sealed record ConditionSensitivity(double Across, double Within, double Ratio, double MeanNorm, double RelativeSpread)
{
    /// <summary>The figures of adapters labelled by task, from their Gram matrix (<see cref="AdapterGram.Of"/>).</summary>
    public static ConditionSensitivity Of(double[,] gram, IReadOnlyList<string> tasks)
    {
        var m = tasks.Count;
        if (gram.GetLength(0) != m || gram.GetLength(1) != m)
            throw new LlgbmException($"Condition sensitivity: {m} task labels for a {gram.GetLength(0)} × {gram.GetLength(1)} Gram matrix.");
        var (across, acrossCount, within, withinCount) = (0.0, 0, 0.0, 0);
        for (var i = 0; i < m; i++)
            for (var j = i + 1; j < m; j++)
            {
                var d = AdapterGram.Distance(gram, i, j);
                if (tasks[i] == tasks[j])
                {
                    within += d;
                    withinCount++;
                }
                else
                {
                    across += d;
                    acrossCount++;
                }
            }
        if (acrossCount == 0 || withinCount == 0)
            throw new LlgbmException("Condition sensitivity needs at least two tasks and two adapters of one task.");
        across /= acrossCount;
        within /= withinCount;
        var norm = Enumerable.Range(0, m).Average(i => Math.Sqrt(Math.Max(0, gram[i, i])));
        return new ConditionSensitivity(across, within, within > 0 ? across / within : double.NaN, norm, norm > 0 ? across / norm : double.NaN);
    }
}
