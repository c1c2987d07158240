using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLGBM.Algebra;
using LLGBM.Delta;
using LLGBM.Experiments;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm eval deltas</c>: the Delta Activations evaluation of a teacher pool (<see cref="DeltaQualityStudy"/>) as JSON
/// and tables.
/// </summary>
public static class EvalDeltasCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "Base checkpoint directory (with its tokenizer).", Required = true };
        var teachers = new Option<string>("--teachers") { Description = "The teacher pool's directory (with its manifest.json).", Required = true };
        var tasks = new Option<string>("--tasks")
        {
            Description = "Directory of task directories (the suite): domains, mixtures and training prompts.",
            Required = true,
        };
        var cache = new Option<string?>("--cache")
        {
            Description = "Delta cache to read deltas from (only read; deltas missing there are computed in memory; fill it with llgbm deltas compute).",
        };
        var generic = new Option<int>("--generic")
        {
            Description = "Delta probes: the first N generic Alpaca-style probes (as llgbm deltas compute).",
            DefaultValueFactory = _ => 5,
        };
        var pooling = new Option<string>("--pooling")
        {
            Description = "Delta pooling: last (the last real token) or mean (over real tokens).",
            DefaultValueFactory = _ => "last",
        };
        var prompts = new Option<int>("--prompts")
        {
            Description = "Training prompts per prompt embedding (each checkpoint of a task gets its own seeded sample).",
            DefaultValueFactory = _ => 32,
        };
        var output = new Option<string?>("--out") { Description = "Write the results to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON results instead of the tables." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "deltas",
            "Delta Activations evaluation of a teacher pool: silhouette with cosine distance over domains for delta activations, " +
            "flattened LoRA weights (A and B; ΔW) and the base model's prompt embedding, per checkpoint and per task; and the additivity of mixture tasks.")
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
            var err = CommandAction.Err(parse);
            var result = DeltaQualityStudy.Run(
                new DeltaQualitySettings(parse.GetValue(baseModel)!, parse.GetValue(teachers)!, parse.GetValue(tasks)!, settings),
                line => err.WriteLine($"[eval deltas] {line}"));
            var text = JsonSerializer.Serialize(result, LlgbmJson.Options);
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTables(o, result));
        });
        return command;
    }

    /// <summary>The silhouette table and the additivity table, as plain text.</summary>
    public static void WriteTables(TextWriter output, DeltaQualityResult result)
    {
        var report = result.Report;
        var silhouettes = new Table().AddColumns("representation", "level", "points", "domains", "silhouette");
        foreach (var row in report.Silhouettes)
            silhouettes.AddRow(row.Representation, row.Level, row.Points.ToString(CultureInfo.InvariantCulture),
                $"{row.Domains.Length}: {string.Join(", ", row.Domains)}", F(row.Silhouette));
        output.WriteLine(
            FormattableString.Invariant(
                $"Silhouette (cosine distance, domain labels; mixtures left out). Delta Activations reports {DeltaQualityStudy.PublishedDeltaSilhouette} ") +
            FormattableString.Invariant($"for deltas, {DeltaQualityStudy.PublishedWeightSilhouette} for flattened weights."));
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
        output.WriteLine(
            FormattableString.Invariant($"{result.Adapters} adapters; deltas: {result.DeltasFromCache} from the cache, ") +
            FormattableString.Invariant($"{result.DeltasComputed} computed ({result.Probes}, {result.DeltaSpec})"));
    }

    static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}
