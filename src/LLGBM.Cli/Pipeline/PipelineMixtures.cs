namespace LLGBM.Cli.Pipeline;

/// <summary>The pipeline's task-mixture experiment (<c>llgbm mixture</c>): which mixtures, and how they are run.</summary>
/// <param name="Pairs">The component pairs, each mixed with <c>llgbm tasks mix</c> (training tasks of different domains).</param>
/// <param name="TeacherArgs">Arguments of <c>llgbm teachers train</c> for the mixture teachers beyond the paths and the task.</param>
/// <param name="Generators">Generator run names under <c>ROOT/generators</c> that generate from prompts of both tasks.</param>
/// <param name="TwoStage">The two-stage run name under <c>ROOT/generators</c> (none: its methods are skipped).</param>
/// <param name="Args">Arguments of <c>llgbm mixture</c> beyond the paths, the mixture and the runs.</param>
public sealed record PipelineMixtures(
    IReadOnlyList<(string First, string Second)> Pairs, IReadOnlyList<string> TeacherArgs, IReadOnlyList<string> Generators,
    string? TwoStage, IReadOnlyList<string> Args);
