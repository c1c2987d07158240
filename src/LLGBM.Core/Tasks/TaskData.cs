namespace LLGBM.Tasks;

/// <summary>A task with its examples: the contents of one task directory.</summary>
public sealed record TaskData(TaskSpec Spec, IReadOnlyList<TaskExample> Train, IReadOnlyList<TaskExample> Test);
