using System.Text.Json.Nodes;
using LLGBM.Experiments;
using LLGBM.Generators;
using LLGBM.Tasks.Synthetic;

namespace LLGBM.Cli.Pipeline;

/// <summary>The settings of the cross-backbone transfer stage (<see cref="TransferStage"/>).</summary>
public sealed record PipelineTransferSettings
{
    /// <summary>The second backbone's preset.</summary>
    public string Preset { get; init; } = "tiny-b";

    /// <summary>Arguments of <c>llgbm base pretrain</c> for the second backbone beyond the preset and <c>--out</c>.</summary>
    public required IReadOnlyList<string> PretrainArgs { get; init; }

    /// <summary>Arguments of <c>llgbm teachers train</c> on the second backbone beyond the paths and the tasks.</summary>
    public required IReadOnlyList<string> TeacherArgs { get; init; }

    /// <summary>Config fields replaced in the transfer runs' config (after the plan's own overrides).</summary>
    public required IReadOnlyDictionary<string, JsonNode> ConfigOverrides { get; init; }
}

/// <summary>
/// The cross-backbone transfer experiment under <c>ROOT/transfer</c>: a second base model of another width and depth
/// (<c>base-b</c>), its teachers on the generator's training and held-out tasks (<c>teachers-b</c>, deltas in
/// <c>deltas-b</c>), the two-stage generator supervised with delta meanings on both backbones (<c>runs/meaning-a</c> on
/// the pipeline's base model, <c>runs/meaning-b</c> on the second), the second backbone's run supervised with delta
/// activations (<c>runs/activation-b</c>), and two results files: <c>meaning.json</c> (backbone A's predictor driving
/// backbone B's decoder, evaluated on B) and <c>activation.json</c> (the same composition with activation targets,
/// which cannot compose; the file says why).
/// </summary>
public sealed class TransferStage(PipelinePlan plan, string root, string repository, TextWriter log, Func<IReadOnlyList<LlgbmJob>, int> runJobs)
{
    readonly RunsLayout layout = new(root);

    /// <summary>Runs the stage; returns 0, or the exit code of the first command that failed.</summary>
    public int Run()
    {
        var settings = plan.Transfer;
        var suite = layout.Suite;
        var baseB = layout.TransferBase;
        var teachersB = layout.TransferTeachers;
        var deltasB = layout.TransferDeltas;
        var meaning = Config("two-stage-meaning", "Meaning");
        var activation = Config("two-stage-meaning", "Activation");
        var config = GeneratorConfig.Load(meaning);
        var tasks = Tasks(config, suite);
        var steps = new List<Func<int>>
        {
            () => Llgbm(["base", "pretrain", "--preset", settings.Preset, "--out", baseB, .. settings.PretrainArgs]),
            () => Llgbm(["teachers", "train", "--base", baseB, "--tasks", suite, "--out", teachersB,
                .. tasks.SelectMany(t => new[] { "--task", t }), .. settings.TeacherArgs]),
            // The three generator runs are independent: the pipeline's jobs train them at once.
            () => runJobs([.. new[]
            {
                TrainJob(meaning, layout.TransferRun("meaning-a"), layout.Base, layout.Teachers, layout.Deltas),
                TrainJob(meaning, layout.TransferRun("meaning-b"), baseB, teachersB, deltasB),
                TrainJob(activation, layout.TransferRun("activation-b"), baseB, teachersB, deltasB),
            }.OfType<LlgbmJob>()]),
            () => Once(layout.TransferResults("meaning"), file =>
                Llgbm(["generator", "transfer", "--predictor", layout.TransferRun("meaning-a"), "--decoder", layout.TransferRun("meaning-b"), "--out", file,
                    "--encodings", layout.Encodings])),
            () => Once(layout.TransferResults("activation"), file => ActivationPredictor(out var predictor) is var code and not 0 ? code :
                Llgbm(["generator", "transfer", "--predictor", predictor, "--decoder", layout.TransferRun("activation-b"), "--out", file,
                    "--encodings", layout.Encodings, "--allow-incompatible"])),
        };
        foreach (var step in steps)
        {
            var code = step();
            if (code != 0)
                return code;
        }
        return 0;
    }

    // Backbone A's two-stage run with activation targets: the pipeline's own when it trained one, else the stage's.
    int ActivationPredictor(out string run)
    {
        var pipelineRun = layout.Generator(PipelinePlan.RunName("two-stage", new PipelineGeneratorRun("two-stage", 0)));
        if (File.Exists(Path.Combine(pipelineRun, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)))
        {
            run = pipelineRun;
            return 0;
        }
        run = layout.TransferRun("activation-a");
        return Train(Config("two-stage-meaning", "Activation"), run, layout.Base, layout.Teachers, layout.Deltas);
    }

    // The training command of a run not finished yet (null when it is, after saying so).
    LlgbmJob? TrainJob(string config, string run, string baseDir, string teachers, string deltas)
    {
        if (File.Exists(Path.Combine(run, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile)))
        {
            Kept(run);
            return null;
        }
        return new LlgbmJob("transfer-" + Path.GetFileName(run), ["generator", "train", "--config", config, "--out", run, "--base", baseDir,
            "--tasks", layout.Suite, "--teachers", teachers, "--deltas", deltas, "--encodings", layout.Encodings]);
    }

    int Train(string config, string run, string baseDir, string teachers, string deltas) =>
        TrainJob(config, run, baseDir, teachers, deltas) is { } job ? Llgbm(job.Args) : 0;

    int Kept(string path) => PipelineSteps.Kept(path, log);

    // The training and held-out tasks of a config: its own lists, or its split's.
    static IReadOnlyList<string> Tasks(GeneratorConfig config, string suite)
    {
        if (config.TrainTasks is { } train && config.TestTasks is { } test)
            return [.. train.Concat(test).Distinct()];
        var split = SyntheticSuiteFiles.ReadSplits(suite).FirstOrDefault(s => s.Name == config.Split)
            ?? throw new LlgbmException($"{suite}: the suite has no split named \"{config.Split}\".");
        return [.. (config.TrainTasks ?? split.Train).Concat(config.TestTasks ?? split.Test).Distinct()];
    }

    // The transfer config with the plan's and the stage's overrides and the delta kind, written under ROOT/transfer/configs.
    string Config(string name, string kind)
    {
        var config = GeneratorConfig.Load(Path.Combine(repository, "configs", name + ".json"));
        var node = JsonNode.Parse(config.ToJson())!.AsObject();
        foreach (var (key, value) in plan.ConfigOverrides.Concat(plan.Transfer.ConfigOverrides))
            node[key] = value.DeepClone();
        node["delta_kind"] = kind;
        node["name"] = $"{name}-{kind.ToLowerInvariant()}";
        return PipelineSteps.WriteText(layout.TransferConfig($"{name}-{kind.ToLowerInvariant()}"), node.ToJsonString(GeneratorConfig.JsonOptions));
    }

    int Once(string file, Func<string, int> body) => PipelineSteps.Once(file, log, body);

    int Llgbm(string[] args) => PipelineSteps.Llgbm(args, log);

    /// <summary>The full plan's settings: a second backbone pretrained briefly, one short teacher per task.</summary>
    public static PipelineTransferSettings Full { get; } = new()
    {
        PretrainArgs = ["--steps", "800", "--eval-limit", "30"],
        TeacherArgs = ["--steps", "150", "--checkpoints", "1", "--eval-limit", "30"],
        ConfigOverrides = new Dictionary<string, JsonNode>
        {
            ["steps"] = 200,
            ["eval_batches"] = 2,
            ["eval_limit"] = 30,
            ["in_domain_tasks"] = 4,
            ["train_tasks"] = new JsonArray("add-1", "add-2", "add-3", "add-5", "shift-1", "shift-2", "shift-4", "upper", "has-animal", "largest"),
            ["test_tasks"] = new JsonArray("add-4", "shift-3", "rotate", "has-color"),
        },
    };

    /// <summary>The reduced plan's settings.</summary>
    public static PipelineTransferSettings Reduced { get; } = new()
    {
        PretrainArgs = ["--steps", "30", "--eval-limit", "5"],
        TeacherArgs = ["--steps", "10", "--checkpoints", "1", "--eval-limit", "5"],
        ConfigOverrides = new Dictionary<string, JsonNode> { ["steps"] = 5, ["eval_limit"] = 5, ["eval_batches"] = 2 },
    };
}
