using LLGBM.Experiments;
using LLGBM.Generators;

namespace LLGBM.Cli.Pipeline;

/// <summary>
/// The pipeline's robustness and low-data stage: the low-data runs of <see cref="RobustnessPlan.LowData"/> (the
/// config of <see cref="RobustnessPlan.LowDataConfig"/> with fewer training tasks or teacher checkpoints, evaluated
/// only at the end) under <c>ROOT/generators/low-data/</c>, kept apart from the main runs so that the main tables do not
/// mix them in; then <c>llgbm generator robustness</c> over <see cref="RobustnessPlan.Runs"/> into
/// <c>ROOT/robustness/robustness.json</c>, written once.
/// </summary>
public static class RobustnessStage
{
    /// <summary>
    /// Runs the stage, the low-data runs through <paramref name="runJobs"/> (at once when the pipeline has several
    /// jobs); returns 0, or the exit code of the first command that failed.
    /// </summary>
    public static int Run(PipelinePlan plan, string root, string repository, TextWriter log, Func<IReadOnlyList<LlgbmJob>, int> runJobs)
    {
        var config = LowDataConfigFile(plan, root, repository);
        var lowData = plan.Robustness.LowData.Select(options =>
        {
            var name = $"{plan.Robustness.LowDataConfig}-seed0" + string.Concat(options.Chunk(2).Select(pair => pair[0] switch
            {
                "--train-fraction" => "-frac" + pair[1],
                "--teacher-checkpoints" => "-ckpt" + pair[1],
                _ => throw new LlgbmException($"Pipeline plan: low-data option {pair[0]} is not --train-fraction or --teacher-checkpoints."),
            }));
            return new LlgbmJob(name, ["generator", "train", "--config", config, "--runs", root, "--seed", "0",
                "--out", Path.Combine(new RunsLayout(root).LowData, name), .. options]);
        }).ToList();
        var code = runJobs(lowData);
        if (code != 0)
            return code;
        var layout = new RunsLayout(root);
        var runs = plan.Robustness.Runs.SelectMany(r => new[] { "--run", layout.Generator(PipelinePlan.RunName(r.Config, r)) });
        return PipelineSteps.Once(layout.Robustness, log, file =>
            PipelineSteps.Llgbm(["generator", "robustness", .. runs, "--encodings", layout.Encodings, "--out", file], log));
    }

    // The low-data config: the pipeline's config of that name (with the plan's overrides) evaluated only at the end.
    static string LowDataConfigFile(PipelinePlan plan, string root, string repository)
    {
        var name = plan.Robustness.LowDataConfig;
        var layout = new RunsLayout(root);
        var overridden = layout.Config(name);
        var source = plan.ConfigOverrides.Count > 0 && File.Exists(overridden) ? overridden : Path.Combine(repository, "configs", name + ".json");
        var config = GeneratorConfig.Load(source) with { EvalEvery = 0 };
        return PipelineSteps.WriteText(layout.LowDataConfig(name), config.ToJson());
    }
}
