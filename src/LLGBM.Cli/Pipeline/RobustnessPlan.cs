namespace LLGBM.Cli.Pipeline;

/// <summary>What the robustness and low-data stage of the pipeline runs (<see cref="RobustnessStage"/>).</summary>
/// <param name="Runs">The generator runs (of the plan's <see cref="PipelinePlan.Generators"/>) evaluated with paraphrased and reformatted conditions.</param>
/// <param name="LowDataConfig">The config of the low-data runs (its seed 0).</param>
/// <param name="LowData">The low-data runs: each the <c>llgbm generator train</c> options of one run
/// (<c>--train-fraction F</c>, <c>--teacher-checkpoints N</c>).</param>
public sealed record RobustnessPlan(IReadOnlyList<PipelineGeneratorRun> Runs, string LowDataConfig, IReadOnlyList<IReadOnlyList<string>> LowData);
