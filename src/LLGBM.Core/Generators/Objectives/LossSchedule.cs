using System.Text.Json.Serialization;

namespace LLGBM.Generators;

/// <summary>How a loss weight changes over training.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LossScheduleKind>))]
public enum LossScheduleKind
{
    /// <summary>The weight is <see cref="LossWeight.Value"/> at every step.</summary>
    Constant,

    /// <summary>
    /// The weight rises linearly from <see cref="LossWeight.Start"/> at step <see cref="LossWeight.RampFrom"/> to
    /// <see cref="LossWeight.Value"/> at step <see cref="LossWeight.RampTo"/>, and stays there.
    /// </summary>
    Linear,
}

/// <summary>One term's weight λ in the generator objective, with an optional schedule.</summary>
public sealed record LossWeight
{
    /// <summary>The weight (the final weight of a ramp).</summary>
    public double Value { get; init; }

    /// <summary>The schedule (default constant).</summary>
    public LossScheduleKind Schedule { get; init; } = LossScheduleKind.Constant;

    /// <summary>The weight before and at <see cref="RampFrom"/> (linear schedule).</summary>
    public double Start { get; init; }

    /// <summary>The step the ramp starts at (linear schedule).</summary>
    public int RampFrom { get; init; }

    /// <summary>The step the ramp reaches <see cref="Value"/> at (linear schedule).</summary>
    public int RampTo { get; init; }

    /// <summary>A constant weight.</summary>
    public static LossWeight Constant(double value) => new() { Value = value };

    /// <summary>The weight at <paramref name="step"/> (0-based).</summary>
    public double At(int step)
    {
        if (Schedule == LossScheduleKind.Constant || step >= RampTo)
            return Value;
        if (step <= RampFrom)
            return Start;
        return Start + (Value - Start) * (step - RampFrom) / (RampTo - RampFrom);
    }

    /// <summary>True when the term never contributes (its weight is zero at every step).</summary>
    [JsonIgnore]
    public bool IsOff => Value == 0 && (Schedule == LossScheduleKind.Constant || Start == 0);

    /// <summary>Throws naming <paramref name="field"/> when the weight is negative, not finite, or the ramp is empty.</summary>
    public LossWeight Validate(string field)
    {
        if (!double.IsFinite(Value) || Value < 0 || !double.IsFinite(Start) || Start < 0)
            throw new LlgbmException($"Generator config: {field} must be a finite, non-negative weight (value {Value}, start {Start}).");
        if (Schedule == LossScheduleKind.Linear && (RampFrom < 0 || RampTo <= RampFrom))
            throw new LlgbmException($"Generator config: {field} has a linear schedule from step {RampFrom} to {RampTo}; it needs 0 ≤ ramp_from < ramp_to.");
        return this;
    }
}
