using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Model;
using LLGBM.Tasks;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm eval probe-design</c>: how the design of the delta activation (probe count, generic or task probes, layers,
/// pooling) changes its quality on a teacher pool — silhouette by domain, leave-one-task-out 1-NN by domain, and cost.
/// </summary>
public static class EvalProbeDesignCommand
{

    /// <summary>The quality and cost of one variant.</summary>
    /// <param name="Name">The variant's name.</param>
    /// <param name="Group">The design question it belongs to.</param>
    /// <param name="Description">What it measures.</param>
    /// <param name="Probes">Its probe set's name.</param>
    /// <param name="ProbeCount">Its number of probes.</param>
    /// <param name="ProbeTokens">Tokens over all its probes.</param>
    /// <param name="DeltaSpec">Its spec's key.</param>
    /// <param name="Dimension">The width of its deltas.</param>
    /// <param name="Silhouettes">Silhouette by domain at checkpoint and task level (mixtures left out).</param>
    /// <param name="NearestCheckpoint">Leave-one-task-out 1-NN by domain over every kept checkpoint (mixtures left out).</param>
    /// <param name="NearestTask">The same over final checkpoints only.</param>
    /// <param name="BaseSeconds">Wall time of the base pass (built once per variant).</param>
    /// <param name="DeltaSeconds">Wall time of every adapter's delta together.</param>
    /// <param name="MillisecondsPerAdapter">The median of the adapters' delta times.</param>
    /// <param name="MinMillisecondsPerAdapter">The least of the adapters' delta times (the least disturbed by other work on the machine).</param>
    public sealed record VariantResult(
        string Name, string Group, string Description, string Probes, int ProbeCount, int ProbeTokens, string DeltaSpec, long Dimension,
        DeltaQuality.SilhouetteRow[] Silhouettes, DeltaNeighbours.NeighbourCheck NearestCheckpoint, DeltaNeighbours.NeighbourCheck NearestTask,
        double BaseSeconds, double DeltaSeconds, double MillisecondsPerAdapter, double MinMillisecondsPerAdapter);

    /// <summary>The JSON written by the command.</summary>
    /// <param name="Base">The base checkpoint directory.</param>
    /// <param name="Teachers">The teacher pool directory.</param>
    /// <param name="Tasks">The tasks directory.</param>
    /// <param name="CheckpointsPerTask">The last N kept checkpoints of each task used, or null for all.</param>
    /// <param name="Adapters">Adapters embedded (mixtures included).</param>
    /// <param name="TaskCount">Tasks with adapters (mixtures included).</param>
    /// <param name="Variants">One result per variant, in the order run.</param>
    public sealed record Output(string Base, string Teachers, string Tasks, int? CheckpointsPerTask, int Adapters, int TaskCount, IReadOnlyList<VariantResult> Variants);

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "Base checkpoint directory (with its tokenizer).", Required = true };
        var teachers = new Option<string>("--teachers") { Description = "The teacher pool's directory (with its manifest.json).", Required = true };
        var tasks = new Option<string>("--tasks") { Description = "Directory of task directories (the suite): domains, mixtures and the task probes' prompts.", Required = true };
        var variants = new Option<string?>("--variants") { Description = "Comma-separated variant names to run (default: all): generic-5 (the default design), generic-1, generic-10, generic-20, tasks-N-S (N training prompts of every task), layers-M,L,-1-concat, layers-M,L,-1-mean (M the middle, L the last layer), pool-mean." };
        var perTask = new Option<int>("--per-task") { Description = "Training prompts per task in the task-probe variant.", DefaultValueFactory = _ => 1 };
        var probeSeed = new Option<long>("--probe-seed") { Description = "Seed of the task probes.", DefaultValueFactory = _ => 0 };
        var checkpoints = new Option<int?>("--checkpoints") { Description = "Use the last N kept checkpoints of each task (default: all)." };
        var output = new Option<string?>("--out") { Description = "Write the results to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON results instead of the table." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command("probe-design", "Probe design of the delta activation on a teacher pool: for each variant (generic probe count, generic or task probes, final-norm state or several layers, last token or mean pooling) the silhouette by domain, the leave-one-task-out 1-NN accuracy by domain and the compute cost. Deltas are computed in memory; no delta cache is read or written.")
        {
            baseModel, teachers, tasks, variants, perTask, probeSeed, checkpoints, output, json, device,
        };
        CommandAction.Set(command, parse =>
        {
            var (baseDir, poolDir, tasksDir) = (parse.GetValue(baseModel)!, parse.GetValue(teachers)!, parse.GetValue(tasks)!);
            var suite = TaskSuite.LoadAll(tasksDir);
            if (suite.Count == 0)
                throw new LlgbmException($"--tasks {tasksDir}: no task directories found.");
            var configPath = Path.Combine(baseDir, "config.json");
            if (!File.Exists(configPath))
                throw new LlgbmException($"--base {baseDir}: no config.json.");
            var all = ProbeDesignVariant.Standard(suite, Qwen2Config.Load(configPath).NumHiddenLayers, parse.GetValue(perTask), parse.GetValue(probeSeed));
            var chosen = Choose(all, parse.GetValue(variants));
            var err = CommandAction.Err(parse);
            var (adapters, deltas) = PoolDeltaVariants.Compute(
                baseDir, poolDir, chosen, parse.GetValue(checkpoints), TorchChoices.Device(parse.GetValue(device)!), line => err.WriteLine($"[probe design] {line}"));
            var mixtures = EvalDeltasCommand.Mixtures(suite);
            var result = new Output(
                baseDir, poolDir, tasksDir, parse.GetValue(checkpoints), adapters.Count, adapters.Select(a => a.Checkpoint.Task).Distinct().Count(),
                [.. deltas.Select(d => Evaluate(adapters, d, mixtures))]);
            var text = JsonSerializer.Serialize(result, LlgbmJson.Options);
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTable(o, result));
        });
        return command;
    }

    /// <summary>The variants named in <paramref name="names"/> (comma-separated), in the order given; all when null.</summary>
    /// <exception cref="LlgbmException">A name is not among the variants.</exception>
    public static IReadOnlyList<ProbeDesignVariant> Choose(IReadOnlyList<ProbeDesignVariant> all, string? names)
    {
        if (names is null)
            return all;
        // Layer lists hold commas, so names are matched greedily against the known ones.
        var chosen = new List<ProbeDesignVariant>();
        var rest = names.Trim();
        while (rest.Length > 0)
        {
            var match = all.Where(v => rest == v.Name || rest.StartsWith(v.Name + ",", StringComparison.Ordinal)).MaxBy(v => v.Name.Length)
                ?? throw new LlgbmException($"--variants: \"{rest.Split(',')[0]}\" is not a variant; expected some of {string.Join(" ", all.Select(v => v.Name))}.");
            if (!chosen.Contains(match))
                chosen.Add(match);
            rest = rest[match.Name.Length..].TrimStart(',').Trim();
        }
        return chosen;
    }

    /// <summary>The quality of one variant's deltas: silhouettes and 1-NN checks, mixtures left out.</summary>
    public static VariantResult Evaluate(IReadOnlyList<PoolAdapter> adapters, VariantDeltas deltas, IReadOnlyList<DeltaQuality.Mixture> mixtures)
    {
        var v = deltas.Variant;
        var points = adapters.Select((a, i) => new DeltaQuality.EmbeddedAdapter(a.Checkpoint.Task, a.Checkpoint.Domain, a.Checkpoint.Step, a.Final, deltas.Deltas[i])).ToArray();
        var representation = new DeltaQuality.Representation(v.Name, v.Description, points);
        var mixed = mixtures.Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        var plain = points.Where(p => !mixed.Contains(p.Task)).ToArray();
        return new VariantResult(
            v.Name, v.Group, v.Description, v.Probes.Name, v.Probes.Count, deltas.ProbeTokens, v.Spec.Key(), deltas.Dim,
            DeltaQuality.silhouettes([.. mixtures], representation),
            DeltaNeighbours.leaveOneTaskOut(plain), DeltaNeighbours.leaveOneTaskOut([.. plain.Where(p => p.Final)]),
            deltas.BaseSeconds, deltas.DeltaSeconds.Sum(), deltas.DeltaSeconds.Order().ElementAt(deltas.DeltaSeconds.Count / 2) * 1000,
            deltas.DeltaSeconds.Min() * 1000);
    }

    /// <summary>One row per variant: silhouettes, 1-NN accuracies and cost.</summary>
    public static void WriteTable(TextWriter output, Output result)
    {
        var table = new Table().AddColumns("variant", "group", "probes", "tokens", "dim", "silhouette (ckpt)", "silhouette (task)", "1-NN (ckpt)", "1-NN (task)", "ms/adapter (median)", "ms/adapter (min)");
        foreach (var v in result.Variants)
            table.AddRow(
                Markup.Escape(v.Name), v.Group, v.ProbeCount.ToString(CultureInfo.InvariantCulture), v.ProbeTokens.ToString(CultureInfo.InvariantCulture),
                v.Dimension.ToString(CultureInfo.InvariantCulture), F(v.Silhouettes[0].Silhouette), F(v.Silhouettes[1].Silhouette),
                F(v.NearestCheckpoint.Accuracy), F(v.NearestTask.Accuracy), v.MillisecondsPerAdapter.ToString("F1", CultureInfo.InvariantCulture),
                v.MinMillisecondsPerAdapter.ToString("F1", CultureInfo.InvariantCulture));
        output.WriteLine("Probe design (silhouette: cosine distance over domains; 1-NN: share of adapters whose nearest adapter of another task is of their domain; mixtures left out):");
        CommandAction.Write(output, table);
        output.WriteLine($"{result.Adapters} adapters of {result.TaskCount} tasks");
    }

    static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}
