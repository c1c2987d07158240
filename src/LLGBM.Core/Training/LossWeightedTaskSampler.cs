namespace LLGBM.Training;

/// <summary>
/// Draws task indices with probability proportional to each task's recent training loss (an exponential moving
/// average over the examples seen), never below a floor. Tasks not yet seen weigh as much as the worst seen one.
/// Multi-task training thereby spends its steps on the skills still missing. Deterministic for a given random source.
/// </summary>
public sealed class LossWeightedTaskSampler
{
    readonly double?[] averages;
    readonly double floor;
    readonly double decay;

    /// <summary>A sampler over <paramref name="tasks"/> tasks.</summary>
    /// <param name="tasks">Number of tasks.</param>
    /// <param name="floor">Smallest weight of a task (in loss units).</param>
    /// <param name="decay">Weight of the old average when a new loss is observed.</param>
    public LossWeightedTaskSampler(int tasks, double floor = 0.05, double decay = 0.9)
    {
        if (tasks <= 0)
            throw new ArgumentOutOfRangeException(nameof(tasks), "A sampler needs at least one task.");
        averages = new double?[tasks];
        this.floor = floor;
        this.decay = decay;
    }

    /// <summary>The current sampling weight of each task (not normalised).</summary>
    public double[] Weights()
    {
        var worst = averages.Where(a => a.HasValue).Select(a => a!.Value).DefaultIfEmpty(1.0).Max();
        return averages.Select(a => Math.Max(a ?? worst, floor)).ToArray();
    }

    /// <summary>Draws a task index.</summary>
    public int Next(Random random)
    {
        var weights = Weights();
        var u = random.NextDouble() * weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            u -= weights[i];
            if (u < 0)
                return i;
        }
        return weights.Length - 1;
    }

    /// <summary>Updates the averages with the losses of examples of the given tasks.</summary>
    public void Observe(IReadOnlyList<int> tasks, IReadOnlyList<float> losses)
    {
        for (var i = 0; i < tasks.Count; i++)
        {
            var t = tasks[i];
            averages[t] = averages[t] is { } old ? decay * old + (1 - decay) * losses[i] : losses[i];
        }
    }
}
