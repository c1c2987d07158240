namespace LLGBM.Training;

/// <summary>Linear warm-up from 0 to the peak rate, then cosine decay to <see cref="MinimumRatio"/> × peak.</summary>
public sealed record LearningRateSchedule
{
    /// <summary>The peak learning rate.</summary>
    public required double Peak { get; init; }

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Total steps (warm-up included).</summary>
    public required int TotalSteps { get; init; }

    /// <summary>The final rate as a fraction of the peak.</summary>
    public double MinimumRatio { get; init; } = 0.1;

    /// <summary>The learning rate of step <paramref name="step"/> (0-based).</summary>
    public double At(int step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
            return Peak * (step + 1) / WarmupSteps;
        var decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0.0, 1.0);
        var minimum = Peak * MinimumRatio;
        return minimum + 0.5 * (Peak - minimum) * (1 + Math.Cos(Math.PI * progress));
    }
}
