using System.Globalization;
using System.Text.Json.Nodes;
using LLGBM.Tasks.Synthetic;

namespace LLGBM.Cli.Pipeline;

/// <summary>One generator run of the pipeline: a config file, a seed and an optional λ_δ override.</summary>
/// <param name="Config">The config file's name under <c>configs/</c>, without <c>.json</c>.</param>
/// <param name="Seed">The seed.</param>
/// <param name="LambdaDelta">λ_δ when it overrides the config's (the λ sweep).</param>
public sealed record PipelineGeneratorRun(string Config, long Seed, double? LambdaDelta = null);

/// <summary>
/// What <c>llgbm pipeline</c> runs: the full experiment of the embedded default, or the reduced version for CI
/// (<see cref="Quick"/>) that exercises every stage in a few minutes with results too small to mean anything.
/// </summary>
public sealed record PipelinePlan
{
    /// <summary>Whether this is the reduced plan.</summary>
    public required bool Quick { get; init; }

    /// <summary>Arguments of <c>llgbm tasks synth</c> beyond <c>--out</c>.</summary>
    public required IReadOnlyList<string> SuiteArgs { get; init; }

    /// <summary>Arguments of <c>llgbm base pretrain</c> beyond <c>--out</c>.</summary>
    public required IReadOnlyList<string> PretrainArgs { get; init; }

    /// <summary>Arguments of <c>llgbm teachers train</c> beyond the paths.</summary>
    public required IReadOnlyList<string> TeacherArgs { get; init; }

    /// <summary>The generator runs, in order.</summary>
    public required IReadOnlyList<PipelineGeneratorRun> Generators { get; init; }

    /// <summary>Config fields replaced in every generator config (the quick plan's small settings).</summary>
    public IReadOnlyDictionary<string, JsonNode> ConfigOverrides { get; init; } = new Dictionary<string, JsonNode>();

    /// <summary>Held-out tasks evaluated by retrieval and merging of teacher adapters.</summary>
    public required IReadOnlyList<string> RetrievalTasks { get; init; }

    /// <summary>The numbers of teachers retrieved (the k sweep); each k writes <c>retrieval/k{K}/TASK.json</c>.</summary>
    public required IReadOnlyList<int> RetrievalKs { get; init; }

    /// <summary>Arguments of <c>llgbm retrieve-merge</c> beyond the paths, the task and k.</summary>
    public required IReadOnlyList<string> RetrievalArgs { get; init; }

    /// <summary>Arguments of <c>llgbm bench generator</c> beyond the configs and the root.</summary>
    public required IReadOnlyList<string> BenchArgs { get; init; }

    /// <summary>The task-mixture experiment (<see cref="MixturesStage"/>).</summary>
    public required PipelineMixtures Mixtures { get; init; }

    /// <summary>The robustness evaluation (paraphrased and reformatted conditions) and the low-data runs.</summary>
    public required RobustnessPlan Robustness { get; init; }

    /// <summary>The cross-backbone transfer stage's settings (<see cref="TransferStage"/>).</summary>
    public required PipelineTransferSettings Transfer { get; init; }

    /// <summary>The probe-design study and the delta quality of generated adapters (see <see cref="DeltaStudyStage"/>).</summary>
    public required DeltaStudySettings DeltaStudy { get; init; }

    /// <summary>The full experiment: every variant, three seeds of the main three, the λ sweep and the controls.</summary>
    public static PipelinePlan Full { get; } = new()
    {
        Quick = false,
        SuiteArgs = [],
        PretrainArgs = [],
        TeacherArgs = [],
        Generators =
        [
            .. new long[] { 0, 1, 2 }.SelectMany(s => new[]
            {
                new PipelineGeneratorRun("dnd-weight", s), new PipelineGeneratorRun("multitask", s), new PipelineGeneratorRun("delta-only", s),
            }),
            new("multitask-shuffled", 0),
            new("two-stage", 0),
            new("delta-head", 0),
            new("multitask", 0, 0.03),
            new("multitask", 0, 0.1),
            new("multitask", 0, 0.3),
            new("multitask", 0, 3),
            new("dnd-hyperconv", 0),
        ],
        RetrievalTasks = [.. SyntheticSuite.DefaultHeldOut, .. SyntheticSuite.HeldOutFamilyMembers],
        RetrievalKs = [1, 2, 3, 5, 8],
        RetrievalArgs = ["--merges", "linear,ties,dare-ties", "--limit", "50"],
        BenchArgs = ["--steps", "15"],
        Mixtures = new([("add-1", "upper"), ("reverse", "shift-1"), ("double", "has-fruit")], ["--checkpoints", "1", "--eval-limit", "50"],
            ["dnd-weight-seed0", "multitask-seed0"], "two-stage-seed0", ["--limit", "100", "--conditions", "2"]),
        Robustness = new(
            [.. new long[] { 0, 1, 2 }.SelectMany(s => new[]
                { new PipelineGeneratorRun("dnd-weight", s), new PipelineGeneratorRun("multitask", s), new PipelineGeneratorRun("delta-only", s) })],
            "dnd-weight",
            [["--train-fraction", "0.5"], ["--train-fraction", "0.25"], ["--teacher-checkpoints", "1"]]),
        Transfer = TransferStage.Full,
        DeltaStudy = new(["--checkpoints", "2"], ["--batches", "3"], ["dnd-weight", "multitask", "delta-only"]),
    };

    /// <summary>The reduced plan for CI: a short pretraining, eight teachers, three generator variants of 20 steps.</summary>
    public static PipelinePlan Reduced { get; } = new()
    {
        Quick = true,
        SuiteArgs = ["--train", "200", "--test", "40"],
        PretrainArgs = ["--steps", "200", "--eval-limit", "10"],
        TeacherArgs =
        [
            "--task", "add-1", "--task", "add-2", "--task", "add-3", "--task", "upper", "--task", "reverse",
            "--task", "shift-1", "--task", "shift-2", "--task", "double-first",
            "--steps", "60", "--checkpoints", "2", "--every", "5", "--eval-limit", "10",
        ],
        Generators = [new("dnd-weight", 0), new("multitask", 0), new("delta-only", 0)],
        ConfigOverrides = new Dictionary<string, JsonNode>
        {
            ["steps"] = 20,
            ["condition_pool"] = 32,
            ["eval_every"] = 0,
            ["eval_batches"] = 2,
            ["eval_limit"] = 10,
            ["in_domain_tasks"] = 2,
            ["train_tasks"] = new JsonArray("add-1", "add-2", "upper", "reverse", "shift-1"),
            ["test_tasks"] = new JsonArray("add-3", "shift-2", "double-first"),
        },
        RetrievalTasks = ["add-3"],
        RetrievalKs = [1, 2],
        RetrievalArgs = ["--merges", "linear,ties", "--limit", "10", "--library-batches", "2"],
        BenchArgs = ["--steps", "3", "--warmup", "1"],
        Mixtures = new([("add-1", "upper")], ["--steps", "60", "--checkpoints", "1", "--eval-limit", "10"],
            ["dnd-weight-seed0", "multitask-seed0"], null, ["--limit", "10", "--conditions", "1"]),
        Robustness = new([new("dnd-weight", 0)], "dnd-weight", [["--train-fraction", "0.5"]]),
        Transfer = TransferStage.Reduced,
        DeltaStudy = new(["--checkpoints", "1", "--variants", "generic-5,tasks-1-0"], ["--batches", "1"], ["multitask"]),
    };

    /// <summary>The run directory name <c>llgbm generator train</c> gives a run.</summary>
    public static string RunName(string configName, PipelineGeneratorRun run) =>
        $"{configName}-seed{run.Seed}" + (run.LambdaDelta is { } l ? "-ld" + l.ToString("G4", CultureInfo.InvariantCulture) : "");
}
