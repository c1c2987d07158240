using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Tasks;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm eval deltas</c>: the Delta Activations evaluation of a teacher pool — silhouette scores with cosine distance
/// over domain labels for several representations of the adapters, and the additivity of mixture tasks.
/// </summary>
public static class EvalDeltasCommand
{
    /// <summary>The silhouette Delta Activations reports for delta activations (average over its settings).</summary>
    public const double PublishedDeltaSilhouette = 0.614;

    /// <summary>The silhouette Delta Activations reports for flattened adapter weights.</summary>
    public const double PublishedWeightSilhouette = -0.043;

    /// <summary>Name of the delta-activation representation.</summary>
    public const string DeltaName = "delta-activation";

    /// <summary>Name of the flattened-A-and-B representation.</summary>
    public const string WeightsName = "lora-weights-ab";

    /// <summary>Name of the flattened-ΔW representation.</summary>
    public const string DeltaWeightName = "lora-delta-w";

    /// <summary>
    /// Name of the prompt representation: the base model's mean-pooled hidden state over the task's prompts (to become
    /// the condition encoder's sentence embedding once there is one).
    /// </summary>
    public const string PromptsName = "prompts-base-hidden-mean";


    /// <summary>The JSON written by the command.</summary>
    /// <param name="Base">The base checkpoint directory.</param>
    /// <param name="Teachers">The teacher pool directory.</param>
    /// <param name="Tasks">The tasks directory.</param>
    /// <param name="Probes">The probe set of the delta activations.</param>
    /// <param name="DeltaSpec">The delta spec's key.</param>
    /// <param name="PromptCount">Training prompts per prompt embedding (at most).</param>
    /// <param name="Adapters">Adapters embedded (mixtures included).</param>
    /// <param name="DeltasFromCache">Deltas read from the cache.</param>
    /// <param name="DeltasComputed">Deltas computed (missing from the cache, or no cache given).</param>
    /// <param name="Published">The figures Delta Activations reports, for comparison.</param>
    /// <param name="Report">Silhouettes, additivity and the representations.</param>
    /// <param name="Pca">The delta activations on their first two principal components (null below three adapters).</param>
    public sealed record Output(
        string Base, string Teachers, string Tasks, string Probes, string DeltaSpec, int PromptCount, int Adapters,
        int DeltasFromCache, int DeltasComputed, IReadOnlyDictionary<string, double> Published, DeltaQuality.Report Report,
        DeltaPca? Pca);

    /// <summary>One kept teacher adapter's delta activation on the pool's first two principal components.</summary>
    /// <param name="Task">The adapter's task.</param>
    /// <param name="Domain">The task's domain.</param>
    /// <param name="Step">The training step it was kept at.</param>
    /// <param name="Adapter">The adapter directory, relative to the pool's root.</param>
    /// <param name="Pc1">Its coordinate on the first component.</param>
    /// <param name="Pc2">Its coordinate on the second component.</param>
    public sealed record PcaPoint(string Task, string Domain, int Step, string Adapter, double Pc1, double Pc2);

    /// <summary>The delta activations of every kept adapter (mixtures included) on their first two principal components.</summary>
    /// <param name="Explained">The share of the variance each component explains.</param>
    /// <param name="Points">Every adapter's coordinates, in the pool's order.</param>
    public sealed record DeltaPca(IReadOnlyList<double> Explained, IReadOnlyList<PcaPoint> Points);

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "Base checkpoint directory (with its tokenizer).", Required = true };
        var teachers = new Option<string>("--teachers") { Description = "The teacher pool's directory (with its manifest.json).", Required = true };
        var tasks = new Option<string>("--tasks") { Description = "Directory of task directories (the suite): domains, mixtures and training prompts.", Required = true };
        var cache = new Option<string?>("--cache") { Description = "Delta cache to read deltas from (only read; deltas missing there are computed in memory; fill it with llgbm deltas compute)." };
        var generic = new Option<int>("--generic") { Description = "Delta probes: the first N generic Alpaca-style probes (as llgbm deltas compute).", DefaultValueFactory = _ => 5 };
        var pooling = new Option<string>("--pooling") { Description = "Delta pooling: last (the last real token) or mean (over real tokens).", DefaultValueFactory = _ => "last" };
        var prompts = new Option<int>("--prompts") { Description = "Training prompts per prompt embedding (each checkpoint of a task gets its own seeded sample).", DefaultValueFactory = _ => 32 };
        var output = new Option<string?>("--out") { Description = "Write the results to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON results instead of the tables." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command("deltas", "Delta Activations evaluation of a teacher pool: silhouette with cosine distance over domains for delta activations, flattened LoRA weights (A and B; ΔW) and the base model's prompt embedding, per checkpoint and per task; and the additivity of mixture tasks.")
        {
            baseModel, teachers, tasks, cache, generic, pooling, prompts, output, json, device,
        };
        CommandAction.Set(command, parse =>
        {
            var spec = new DeltaSpec
            {
                Pooling = parse.GetValue(pooling) switch
                {
                    "last" => DeltaPooling.LastToken,
                    "mean" => DeltaPooling.MeanOverRealTokens,
                    var other => throw new LlgbmException($"--pooling: expected last or mean, found \"{other}\"."),
                },
            };
            var settings = new TeacherEmbeddingSettings
            {
                Probes = ProbeSet.Generic(parse.GetValue(generic)),
                Spec = spec,
                CacheDir = parse.GetValue(cache),
                PromptCount = parse.GetValue(prompts),
                Device = TorchChoices.Device(parse.GetValue(device)!),
            };
            var (baseDir, poolDir, tasksDir) = (parse.GetValue(baseModel)!, parse.GetValue(teachers)!, parse.GetValue(tasks)!);
            var err = CommandAction.Err(parse);
            var suite = TaskSuite.LoadAll(tasksDir);
            var embeddings = TeacherEmbeddings.Compute(baseDir, poolDir, suite, settings, line => err.WriteLine($"[eval deltas] {line}"));
            var report = Evaluate(embeddings, suite, settings);
            var fromCache = embeddings.Count(e => e.DeltaFromCache);
            var result = new Output(
                baseDir, poolDir, tasksDir, settings.Probes.Name, spec.Key(), settings.PromptCount, embeddings.Count,
                fromCache, embeddings.Count - fromCache,
                new Dictionary<string, double> { [DeltaName] = PublishedDeltaSilhouette, [WeightsName] = PublishedWeightSilhouette },
                report, Pca(embeddings));
            var text = JsonSerializer.Serialize(result, LlgbmJson.Options);
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTables(o, result));
        });
        return command;
    }

    /// <summary>The four representations of <paramref name="embeddings"/>, named and described.</summary>
    public static DeltaQuality.Representation[] Representations(IReadOnlyList<TeacherEmbedding> embeddings, TeacherEmbeddingSettings settings)
    {
        DeltaQuality.Representation Make(string name, string description, Func<TeacherEmbedding, float[]> vector) =>
            new(name, description, [.. embeddings.Select(e => new DeltaQuality.EmbeddedAdapter(e.Checkpoint.Task, e.Checkpoint.Domain, e.Checkpoint.Step, e.Final, vector(e)))]);
        return
        [
            Make(DeltaName, $"delta activation: mean over the probes ({settings.Probes.Name}) of the adapted minus the base representation ({settings.Spec.Key()})", e => e.Delta),
            Make(WeightsName, "raw LoRA weights: A then B of every module (modules in ordinal name order), flattened", e => e.LoraWeights),
            Make(DeltaWeightName, "LoRA update dW = scale * B * A of every module, flattened (invariant to the A/B gauge)", e => e.DeltaWeight),
            Make(PromptsName, $"base model's final-norm hidden state mean-pooled over the tokens of up to {settings.PromptCount} training prompts of the task, averaged (one seeded sample per checkpoint)", e => e.Prompts),
        ];
    }

    /// <summary>
    /// The delta activations of <paramref name="embeddings"/> on their first two principal components
    /// (<see cref="PrincipalComponents.project"/>); null below three adapters.
    /// </summary>
    public static DeltaPca? Pca(IReadOnlyList<TeacherEmbedding> embeddings)
    {
        if (embeddings.Count < 3)
            return null;
        var projection = PrincipalComponents.project(2, [.. embeddings.Select(e => e.Delta)]);
        double At(double[] row, int c) => c < row.Length ? row[c] : 0.0;
        return new DeltaPca(projection.Explained, [.. embeddings.Select((e, i) => new PcaPoint(
            e.Checkpoint.Task, e.Checkpoint.Domain, e.Checkpoint.Step, e.Checkpoint.Adapter,
            At(projection.Coordinates[i], 0), At(projection.Coordinates[i], 1)))]);
    }

    /// <summary>The mixtures among <paramref name="tasks"/>: every task with components.</summary>
    public static DeltaQuality.Mixture[] Mixtures(IReadOnlyList<TaskData> tasks) =>
        [.. tasks.Where(t => t.Spec.Components.Count > 0).Select(t => new DeltaQuality.Mixture(t.Spec.Name, [.. t.Spec.Components]))];

    /// <summary>The report over the four representations of <paramref name="embeddings"/>.</summary>
    public static DeltaQuality.Report Evaluate(IReadOnlyList<TeacherEmbedding> embeddings, IReadOnlyList<TaskData> tasks, TeacherEmbeddingSettings settings) =>
        DeltaQuality.report(Mixtures(tasks), Representations(embeddings, settings));

    /// <summary>The silhouette table and the additivity table, as plain text.</summary>
    public static void WriteTables(TextWriter output, Output result)
    {
        var report = result.Report;
        var silhouettes = new Table().AddColumns("representation", "level", "points", "domains", "silhouette");
        foreach (var row in report.Silhouettes)
            silhouettes.AddRow(row.Representation, row.Level, row.Points.ToString(CultureInfo.InvariantCulture),
                $"{row.Domains.Length}: {string.Join(", ", row.Domains)}", F(row.Silhouette));
        output.WriteLine(FormattableString.Invariant(
            $"Silhouette (cosine distance, domain labels; mixtures left out). Delta Activations reports {PublishedDeltaSilhouette} for deltas, {PublishedWeightSilhouette} for flattened weights."));
        CommandAction.Write(output, silhouettes);

        var width = report.Additivity.Select(r => r.Components.Length).DefaultIfEmpty(2).Max();
        var additivity = new Table().AddColumns("representation", "mixture");
        additivity.AddColumns([.. Enumerable.Range(1, width).Select(i => $"c{i}")]);
        additivity.AddColumn($"cos(mix, {string.Join("+", Enumerable.Range(1, width).Select(i => $"c{i}"))})");
        additivity.AddColumns([.. Enumerable.Range(1, width).Select(i => $"cos(mix, c{i})")]);
        additivity.AddColumn("gain");
        foreach (var row in report.Additivity)
        {
            var cells = new List<string> { row.Representation, Markup.Escape(row.Mixture) };
            cells.AddRange(Enumerable.Range(0, width).Select(i => i < row.Components.Length ? Markup.Escape(row.Components[i]) : ""));
            cells.Add(F(row.WithSum));
            cells.AddRange(Enumerable.Range(0, width).Select(i => i < row.WithComponents.Length ? F(row.WithComponents[i]) : ""));
            cells.Add(F(row.Gain));
            additivity.AddRow([.. cells]);
        }
        output.WriteLine("Additivity (final checkpoints; gain = cos(mix, sum) - best single component):");
        CommandAction.Write(output, additivity);
        if (report.SkippedMixtures.Length > 0)
            output.WriteLine($"mixtures without adapters (left out): {string.Join(", ", report.SkippedMixtures)}");
        output.WriteLine(FormattableString.Invariant(
            $"{result.Adapters} adapters; deltas: {result.DeltasFromCache} from the cache, {result.DeltasComputed} computed ({result.Probes}, {result.DeltaSpec})"));
    }

    static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}
