using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Experiments;
using LLGBM.Tasks;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm retrieve-merge</c>: the B2 baseline (<see cref="RetrieveMergeExperiment"/>) on a held-out task: predict δ̂ from
/// each condition by nearest-condition lookup, retrieve the top-k teacher adapters by delta, merge them (average vs
/// TIES) and evaluate, next to the base model and the mean teacher.
/// </summary>
public static class RetrieveMergeCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base")
        {
            Description = "Base checkpoint directory (with its tokenizer).",
            DefaultValueFactory = _ => RunsLayout.Default.Base,
        };
        var tasks = new Option<string>("--tasks") { Description = "The task suite's root.", DefaultValueFactory = _ => RunsLayout.Default.Suite };
        var teachers = new Option<string>("--teachers")
        {
            Description = "The teacher pool's directory.",
            DefaultValueFactory = _ => RunsLayout.Default.Teachers,
        };
        var deltas = new Option<string>("--deltas")
        {
            Description = "The delta cache (llgbm deltas compute) of the pool.",
            DefaultValueFactory = _ => RunsLayout.Default.Deltas,
        };
        var task = new Option<string>("--task")
        {
            Description = "The held-out task: its teachers leave the pool, its prompt batches are the conditions.",
            Required = true,
        };
        var k = new Option<int>("--k")
        {
            Description = "Teacher adapters retrieved per condition (from k tasks, one each, unless --all-checkpoints).",
            DefaultValueFactory = _ => 3,
        };
        var exclude = new Option<string[]>("--exclude")
        {
            Description = "Tasks whose teachers also leave the pool (repeatable): the split's other held-out tasks.",
            AllowMultipleArgumentsPerToken = true,
        };
        var allCheckpoints = new Option<bool>("--all-checkpoints")
        {
            Description = "Retrieve the k nearest kept checkpoints even when several are one task's (default: one per task).",
        };
        var similarity = new Option<string>("--similarity") { Description = "cosine or l2 between deltas.", DefaultValueFactory = _ => "cosine" };
        similarity.AcceptOnlyFromAmong("cosine", "l2");
        var weighting = new Option<string>("--weighting")
        {
            Description = "uniform, or softmax of the similarities over --temperature.",
            DefaultValueFactory = _ => "uniform",
        };
        weighting.AcceptOnlyFromAmong("uniform", "softmax");
        var temperature = new Option<double>("--temperature") { Description = "Softmax temperature.", DefaultValueFactory = _ => 0.1 };
        var merges = new Option<string>("--merges")
        {
            Description = "Comma-separated merge methods compared: linear, ties, dare, dare-ties.",
            DefaultValueFactory = _ => "linear,ties",
        };
        var density = new Option<double>("--density")
        {
            Description = "TIES's trim density (DARE's 1 − p).",
            DefaultValueFactory = _ => Merge.DefaultDensity,
        };
        var conditions = new Option<int>("--conditions")
        {
            Description = "Prompt batches of the held-out task evaluated (at least 3).",
            DefaultValueFactory = _ => 3,
        };
        var batchSize = new Option<int>("--batch-size") { Description = "Examples K per prompt batch.", DefaultValueFactory = _ => 8 };
        var promptsOnly = new Option<bool>("--prompts-only") { Description = "Conditions of prompts alone (default: prompts with answers)." };
        var libraryBatches = new Option<int>("--library-batches")
        {
            Description = "Prompt batches per training task in the nearest-condition library.",
            DefaultValueFactory = _ => 4,
        };
        var seed = new Option<long>("--seed") { Description = "Seed of the conditions, the library and DARE.", DefaultValueFactory = _ => 0 };
        var limit = new Option<int>("--limit") { Description = "Test examples evaluated per adapter (0 for all).", DefaultValueFactory = _ => 100 };
        var probes = new Option<string?>("--probes") { Description = "The probe texts the deltas were computed with (as for llgbm deltas compute)." };
        var generic = new Option<int>("--generic")
        {
            Description = "The generic probes the deltas were computed with (when --probes is not given).",
            DefaultValueFactory = _ => 5,
        };
        var layers = new Option<string?>("--layers")
        {
            Description = "The hidden-state indices the deltas were computed with (default: the final-norm state).",
        };
        var pooling = new Option<string>("--pooling")
        {
            Description = "The pooling the deltas were computed with: last or mean.",
            DefaultValueFactory = _ => "last",
        };
        var output = new Option<string?>("--out") { Description = "Write the result to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON result instead of the tables." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "retrieve-merge",
            "The B2 baseline on a held-out task: predict each condition's delta by nearest-condition lookup, retrieve the top-k teacher adapters by delta, " +
            "merge them on ΔW (average vs TIES) and evaluate; with the base model and the mean teacher for comparison.")
        {
            baseModel, tasks, teachers, deltas, task, exclude, k, allCheckpoints, similarity, weighting, temperature, merges, density, conditions, batchSize,
            promptsOnly, libraryBatches, seed, limit, probes, generic, layers, pooling, output, json, device,
        };
        CommandAction.Set(command, parse =>
        {
            var spec = new DeltaSpec
            {
                Layers = parse.GetValue(layers) is { } l ? DeltaSpec.ParseLayers(l) : null,
                Pooling = parse.GetValue(pooling) switch
                {
                    "last" => DeltaPooling.LastToken,
                    "mean" => DeltaPooling.MeanOverRealTokens,
                    var other => throw new LlgbmException($"--pooling: expected last or mean, found \"{other}\"."),
                },
            };
            var probeSet = parse.GetValue(probes) is { } file ? ProbeSet.Load(file) : ProbeSet.Generic(parse.GetValue(generic));
            var methods = parse.GetValue(merges)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (methods.Length == 0)
                throw new LlgbmException("--merges: name at least one merge method.");
            var seedValue = parse.GetValue(seed);
            var mergeSettings = methods
                .Select(m => new Merge.Settings(Merge.Method.Parse(m), parse.GetValue(density), [], seedValue, 1.0))
                .ToArray();
            var settings = new RetrieveMerge.Settings(
                parse.GetValue(k), Retrieve.Similarity.Parse(parse.GetValue(similarity)!),
                Retrieve.Weighting.Parse(parse.GetValue(weighting)!, parse.GetValue(temperature)), mergeSettings,
                !parse.GetValue(allCheckpoints));
            var experiment = new RetrieveMergeSettings
            {
                Base = parse.GetValue(baseModel)!,
                Tasks = parse.GetValue(tasks)!,
                Teachers = parse.GetValue(teachers)!,
                Deltas = parse.GetValue(deltas)!,
                Probes = probeSet,
                Spec = spec,
                Task = parse.GetValue(task)!,
                Exclude = parse.GetValue(exclude) ?? [],
                Retrieval = settings,
                Conditions = parse.GetValue(conditions),
                BatchSize = parse.GetValue(batchSize),
                Mode = parse.GetValue(promptsOnly) ? PromptBatchMode.PromptsOnly : PromptBatchMode.PromptsWithAnswers,
                LibraryBatches = parse.GetValue(libraryBatches),
                Seed = seedValue,
                Limit = parse.GetValue(limit),
                Device = TorchChoices.Device(parse.GetValue(device)!),
            };
            var err = CommandAction.Err(parse);
            var result = RetrieveMergeExperiment.Run(experiment, line => err.WriteLine($"[retrieve-merge] {line}"));
            var text = result.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTables(o, result));
        });
        return command;
    }

    static string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);

    static void WriteTables(TextWriter o, RetrieveMergeResult result)
    {
        var summary = result.Summary;
        var conditions = new Table().AddColumns("condition", "δ̂ from", "retrieved (score, weight)");
        foreach (var (merge, _) in summary.ByMerge.Select(p => p.ToValueTuple()))
            conditions.AddColumn(merge.Method.Name);
        var index = 0;
        foreach (var outcome in summary.Outcomes)
        {
            index++;
            var retrieved = string.Join(", ", outcome.Retrieved.Zip(outcome.Weights, (h, w) => $"{h.Item} ({F(h.Score)}, {F(w)})"));
            var row = new List<string> { index.ToString(CultureInfo.InvariantCulture), outcome.Predicted.Source, retrieved };
            row.AddRange(outcome.Results.Select(r => F(r.Evaluation.Accuracy)));
            conditions.AddRow(row.Select(Markup.Escape).ToArray());
        }
        CommandAction.Write(o, conditions);

        var accuracies = new Table().AddColumns("adapter", "accuracy", "std", "n");
        accuracies.AddRow("base model (no adapter)", F(result.Base.Accuracy), "", result.Base.N.ToString(CultureInfo.InvariantCulture));
        accuracies.AddRow("mean teacher (control)", F(result.MeanTeacher.Accuracy), "", result.MeanTeacher.N.ToString(CultureInfo.InvariantCulture));
        foreach (var (merge, accuracy) in summary.ByMerge.Select(p => p.ToValueTuple()))
            accuracies.AddRow(Markup.Escape($"retrieve-merge: {merge.Describe()}"), F(accuracy.Mean), F(accuracy.Std),
                $"{accuracy.Accuracies.Count} conditions × {accuracy.Evaluations[0].N}");
        CommandAction.Write(o, accuracies);
        o.WriteLine(
            $"{result.Settings.Task}: pool of {result.Pool.Count} teacher adapters " +
            $"(the task's own{(result.Settings.Exclude.Count > 0 ? " and those of " + string.Join(", ", result.Settings.Exclude) : "")} left out), " +
            $"k = {result.Settings.Retrieval.K}");
    }
}
