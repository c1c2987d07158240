using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLGBM.Checkpoints;
using LLGBM.Evaluation;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Tasks.Synthetic;
using LLGBM.Text;

namespace LLGBM.Pretraining;

/// <summary>What <see cref="BaseModelBuilder.Build"/> produced or found.</summary>
/// <param name="Directory">The checkpoint directory.</param>
/// <param name="Cached">True when an existing checkpoint of the same recipe was reused.</param>
/// <param name="TrainingSeconds">Wall time of the pretraining run that made the checkpoint.</param>
/// <param name="Evaluations">Accuracy of the model on each task, instructed and bare.</param>
public sealed record BaseModelReport(string Directory, bool Cached, double TrainingSeconds, IReadOnlyList<TaskEvaluation> Evaluations);

/// <summary>
/// Builds the embedded base model: pretrains it on the synthetic suite, evaluates it with and without instructions,
/// and writes a Hugging Face checkpoint directory (config.json, model.safetensors, the byte-level tokenizer files) with
/// <c>pretraining.json</c> (the recipe, its hash, the timing and the accuracies). A directory whose recipe hash
/// matches is reused as it is.
/// </summary>
public static class BaseModelBuilder
{
    /// <summary>The report file in the checkpoint directory.</summary>
    public const string ReportName = "pretraining.json";

    /// <summary>Pretrains into <paramref name="directory"/> unless it already holds this recipe's model.</summary>
    public static BaseModelReport Build(
        BaseModelRecipe recipe, string directory, int evaluationLimit = 100, bool force = false,
        Action<PretrainingProgress>? progress = null, Action<string>? log = null)
    {
        var hash = recipe.Hash();
        if (!force && ReadReportWithHash(directory) is { } existing && existing.Hash == hash)
        {
            log?.Invoke($"{directory}: already pretrained with this recipe ({hash[..12]}); reusing it");
            return existing.Report with { Cached = true };
        }

        var tokenizer = new ByteLevelTokenizer();
        if (recipe.Training.Config.VocabSize < tokenizer.VocabSize)
            throw new LlgbmException(
                $"Base pretraining: preset {recipe.Preset} has a vocabulary of {recipe.Training.Config.VocabSize} ids, " +
                $"but the byte-level tokenizer of pretraining needs {tokenizer.VocabSize} (256 bytes and the special tokens); " +
                $"use a byte-level preset such as tiny or tiny-b.");
        var tasks = SyntheticSuite.Build(recipe.Suite).Where(t => t.Spec.Components.Count == 0).ToList();
        log?.Invoke($"pretraining {recipe.Preset} on {tasks.Count} synthetic tasks for {recipe.Training.Steps} steps");
        var watch = Stopwatch.StartNew();
        using var model = BasePretrainer.Train(recipe.Training, tokenizer, tasks, progress);
        var seconds = watch.Elapsed.TotalSeconds;

        log?.Invoke("evaluating with and without instructions");
        var evaluated = new Qwen2EvaluatedModel(model, Path.GetFileName(Path.GetFullPath(directory)));
        var evaluations = new List<TaskEvaluation>();
        foreach (var task in tasks)
            foreach (var format in new[] { PromptFormat.WithInstruction, PromptFormat.Bare })
                evaluations.Add(
                    TaskEvaluator.Evaluate(evaluated, tokenizer, task, new EvaluationOptions { Format = format, Limit = evaluationLimit, BatchSize = 64 }));

        var report = new BaseModelReport(directory, false, seconds, evaluations);
        Write(directory, model, tokenizer, recipe, hash, report);
        return report;
    }

    /// <summary>Mean accuracy per domain and format ("instructed"/"bare") of a report.</summary>
    public static IReadOnlyList<(string Domain, string Format, double Accuracy)> ByDomain(BaseModelReport report) =>
        report.Evaluations
            .GroupBy(e => (e.Domain, e.Format))
            .Select(g => (g.Key.Domain, g.Key.Format, g.Average(e => e.Accuracy)))
            .OrderBy(r => r.Domain).ThenBy(r => r.Format)
            .ToList();

    static void Write(string directory, Qwen2ForCausalLM model, ByteLevelTokenizer tokenizer, BaseModelRecipe recipe, string hash, BaseModelReport report)
    {
        Directory.CreateDirectory(directory);
        // The report goes last and only after the weights: a directory with a matching report is complete.
        File.Delete(Path.Combine(directory, ReportName));
        Qwen2Checkpoint.Save(model, directory);
        tokenizer.Save(directory);
        var json = new JsonObject
        {
            ["recipe_hash"] = hash,
            ["recipe"] = recipe.ToJson(),
            ["training_seconds"] = report.TrainingSeconds,
            ["evaluations"] = JsonNode.Parse(JsonSerializer.Serialize(report.Evaluations, TaskEvaluation.JsonOptions)),
        };
        AtomicFile.WriteText(Path.Combine(directory, ReportName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The report of a base model built here (<c>pretraining.json</c>), or null when there is none.</summary>
    public static BaseModelReport? ReadReport(string directory) => ReadReportWithHash(directory)?.Report;

    static (string Hash, BaseModelReport Report)? ReadReportWithHash(string directory)
    {
        var path = Path.Combine(directory, ReportName);
        if (!File.Exists(path) || !File.Exists(Path.Combine(directory, "config.json")))
            return null;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var evaluations = JsonSerializer.Deserialize<List<TaskEvaluation>>(json["evaluations"]!.ToJsonString(), TaskEvaluation.JsonOptions)!;
            return ((string)json["recipe_hash"]!, new BaseModelReport(directory, true, (double)json["training_seconds"]!, evaluations));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            return null;
        }
    }
}
