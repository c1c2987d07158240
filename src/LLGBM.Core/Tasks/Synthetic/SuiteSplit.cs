namespace LLGBM.Tasks.Synthetic;

/// <summary>A split of the suite's tasks for generator experiments: train on some tasks, evaluate on others.</summary>
/// <param name="Name">The split's name, e.g. "heldout-family" or "loto-reverse".</param>
/// <param name="Description">What the split tests.</param>
/// <param name="Train">Tasks whose teachers and prompts the generator may see.</param>
/// <param name="Test">Held-out tasks.</param>
public sealed record SuiteSplit(string Name, string Description, IReadOnlyList<string> Train, IReadOnlyList<string> Test);
