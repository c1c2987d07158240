namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// A task of the synthetic suite: a deterministic function from random inputs to answers, with the prompt format of
/// its domain. <see cref="Sample"/> draws one example from a seeded random source.
/// </summary>
public sealed record SyntheticTask
{
    /// <summary>The task's description (name, domain, kind, instruction).</summary>
    public required TaskSpec Spec { get; init; }

    /// <summary>The parametric family this task belongs to (e.g. "add-k"), or null.</summary>
    public string? Family { get; init; }

    /// <summary>The task's parameter within its family (e.g. k = 3 for "add-3"), or null.</summary>
    public int? FamilyParameter { get; init; }

    /// <summary>Draws one example.</summary>
    public required Func<Random, TaskExample> Sample { get; init; }

    /// <summary>The task's name.</summary>
    public string Name => Spec.Name;
}
