using LLGBM.Tasks;

namespace LLGBM.Cli.Pipeline;

/// <summary>
/// The pipeline stage of the task-mixture experiment: for each pair of <see cref="PipelinePlan.Mixtures"/>, the
/// mixture task under <c>ROOT/mixtures/tasks</c> (<c>llgbm tasks mix</c>), its teacher in the separate pool
/// <c>ROOT/mixtures/teachers</c> (<c>llgbm teachers train</c>, so the main pool is untouched), and the results file
/// <c>ROOT/mixtures/NAME.json</c> (<c>llgbm mixture</c>), written once.
/// </summary>
public static class MixturesStage
{
    /// <summary>Runs the stage; returns 0, or the exit code of the first command that failed.</summary>
    public static int Run(PipelinePlan plan, string root, TextWriter log)
    {
        var settings = plan.Mixtures;
        var folder = Path.Combine(root, "mixtures");
        var tasks = Path.Combine(folder, "tasks");
        var teachers = Path.Combine(folder, "teachers");
        var generators = Path.Combine(root, "generators");
        foreach (var (first, second) in settings.Pairs)
        {
            var name = TaskMixture.Name(first, second);
            var file = Path.Combine(folder, name + ".json");
            if (File.Exists(file))
            {
                PipelineSteps.Kept(file, log);
                continue;
            }
            string[][] commands =
            [
                ["tasks", "mix", "--tasks", Path.Combine(root, "suite"), "--first", first, "--second", second, "--out", tasks],
                ["teachers", "train", "--base", Path.Combine(root, "base-tiny"), "--tasks", tasks, "--out", teachers, "--task", name, .. settings.TeacherArgs],
                [
                    "mixture", "--base", Path.Combine(root, "base-tiny"), "--tasks", Path.Combine(root, "suite"), "--teachers", Path.Combine(root, "teachers"),
                    "--deltas", Path.Combine(root, "deltas"), "--mixture-tasks", tasks, "--mixture-teachers", teachers, "--mixture", name,
                    "--encodings", Path.Combine(root, "encodings"), "--out", file,
                    .. settings.Generators.SelectMany(g => new[] { "--generator", Path.Combine(generators, g) }),
                    .. settings.TwoStage is { } t ? new[] { "--two-stage", Path.Combine(generators, t) } : [],
                    .. settings.Args,
                ],
            ];
            foreach (var args in commands)
            {
                var code = PipelineSteps.Llgbm(args, log);
                if (code != 0)
                    return code;
            }
        }
        return 0;
    }
}
