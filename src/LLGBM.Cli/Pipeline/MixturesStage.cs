using LLGBM.Experiments;
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
        var layout = new RunsLayout(root);
        var tasks = layout.MixtureTasks;
        var teachers = layout.MixtureTeachers;
        foreach (var (first, second) in settings.Pairs)
        {
            var name = TaskMixture.Name(first, second);
            var file = layout.Mixture(name);
            if (File.Exists(file))
            {
                PipelineSteps.Kept(file, log);
                continue;
            }
            string[][] commands =
            [
                ["tasks", "mix", "--tasks", layout.Suite, "--first", first, "--second", second, "--out", tasks],
                ["teachers", "train", "--base", layout.Base, "--tasks", tasks, "--out", teachers, "--task", name, .. settings.TeacherArgs],
                [
                    "mixture", "--base", layout.Base, "--tasks", layout.Suite, "--teachers", layout.Teachers,
                    "--deltas", layout.Deltas, "--mixture-tasks", tasks, "--mixture-teachers", teachers, "--mixture", name,
                    "--encodings", layout.Encodings, "--out", file,
                    .. settings.Generators.SelectMany(g => new[] { "--generator", layout.Generator(g) }),
                    .. settings.TwoStage is { } t ? new[] { "--two-stage", layout.Generator(t) } : [],
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
