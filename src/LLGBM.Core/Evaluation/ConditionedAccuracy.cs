namespace LLGBM.Evaluation;

/// <summary>
/// A task's accuracy over several independently sampled conditions (e.g. prompt batches that each produce a
/// generated adapter): their mean, sample standard deviation, and each condition's result.
/// </summary>
public sealed record ConditionedAccuracy
{
    /// <summary>The task's name.</summary>
    public required string Task { get; init; }

    /// <summary>The mean accuracy over conditions.</summary>
    public required double Mean { get; init; }

    /// <summary>The sample standard deviation (divisor n − 1) of the accuracies over conditions.</summary>
    public required double Std { get; init; }

    /// <summary>Each condition's accuracy, in the order of the conditions.</summary>
    public required IReadOnlyList<double> Accuracies { get; init; }

    /// <summary>Each condition's evaluation, in the order of the conditions.</summary>
    public required IReadOnlyList<TaskEvaluation> Evaluations { get; init; }
}
