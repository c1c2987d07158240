using System.CommandLine;
using LLGBM.Checkpoints;
using LLGBM.Evaluation;
using LLGBM.Experiments;
using LLGBM.Tasks;
using LLGBM.Text;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm eval</c>: task accuracy of a checkpoint, per task and prompt format, as JSON results and a table.</summary>
public static class EvalCommand
{
    /// <summary>The accepted <c>--format</c> values.</summary>
    public static readonly string[] FormatChoices = [PromptFormatNames.Bare, PromptFormatNames.Instructed, "both"];

    /// <summary>The accepted <c>--normalize</c> values.</summary>
    public static readonly string[] NormalizationChoices = ["none", "tokens", "chars", "bytes"];

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face checkpoint directory with its tokenizer files.", Required = true };
        var tasks = new Option<string>("--tasks") { Description = "Directory of task directories (task.json, test.jsonl).", Required = true };
        var task = new Option<string[]>("--task")
        {
            Description = "Evaluate only this task (repeatable); default: every task.",
            AllowMultipleArgumentsPerToken = true,
        };
        var format = new Option<string>("--format") { Description = "Prompt format: bare, instructed or both.", DefaultValueFactory = _ => "both" };
        format.AcceptOnlyFromAmong(FormatChoices);
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N test examples of each task." };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 8 };
        var normalize = new Option<string>("--normalize")
        {
            Description = "Length normalisation of multiple-choice log-likelihoods: none, tokens, chars or bytes.",
            DefaultValueFactory = _ => "none",
        };
        normalize.AcceptOnlyFromAmong(NormalizationChoices);
        var predictions = new Option<bool>("--predictions") { Description = "Keep every example's prediction in the JSON results." };
        var output = new Option<string?>("--out") { Description = "Write the results to this JSON file (an array, one object per task and format)." };
        var json = new Option<bool>("--json") { Description = "Print the JSON results instead of the table." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var command = new Command(
            "eval",
            "Evaluates a model on tasks: exact match for generation tasks, choice accuracy by log-likelihood for multiple choice. " +
            "The subcommand deltas evaluates the teacher pool's embeddings (clustering by domain, additivity), probe-design the delta activation's probes, " +
            "layers and pooling, generated-deltas the embeddings of generated adapters.")
        {
            model, tasks, task, format, limit, batchSize, normalize, predictions, output, json, device, dtype,
        };
        command.Subcommands.Add(EvalDeltasCommand.Create());
        command.Subcommands.Add(EvalProbeDesignCommand.Create());
        command.Subcommands.Add(EvalGeneratedDeltasCommand.Create());
        CommandAction.Set(command, parse =>
        {
            var options = new EvaluationOptions
            {
                BatchSize = parse.GetValue(batchSize),
                Limit = parse.GetValue(limit),
                Normalization = Normalization(parse.GetValue(normalize)!),
                KeepPredictions = parse.GetValue(predictions),
            }.Validate();
            var formats = Formats(parse.GetValue(format)!);
            var selected = SuiteEvaluation.Select(TaskSuite.LoadAll(parse.GetValue(tasks)!), parse.GetValue(task) ?? []);
            SuiteEvaluation.RefuseEmptyTestSplits(parse.GetValue(tasks)!, selected);
            var directory = parse.GetValue(model)!;
            var tokenizer = Tokenizers.Load(directory);
            using var lm = Qwen2Checkpoint.Load(directory, TorchChoices.Device(parse.GetValue(device)!), TorchChoices.Dtype(parse.GetValue(dtype)!));
            var evaluated = new Qwen2EvaluatedModel(lm, ModelName(directory));
            var err = CommandAction.Err(parse);
            var results = SuiteEvaluation.EvaluateAll(evaluated, tokenizer, selected, formats, options, line => err.WriteLine($"[eval] {line}"));
            if (parse.GetValue(output) is { } path)
                EvaluationResults.Write(path, results);
            if (parse.GetValue(json))
                CommandAction.Out(parse).WriteLine(EvaluationResults.ToJson(results));
            else
                WriteTable(CommandAction.Out(parse), results);
            return 0;
        });
        return command;
    }

    /// <summary>The prompt formats of a <c>--format</c> value: bare, instructed, or both (bare first).</summary>
    public static IReadOnlyList<PromptFormat> Formats(string name) =>
        name == "both" ? [PromptFormat.Bare, PromptFormat.WithInstruction] : [PromptFormatNames.Parse(name)];

    /// <summary>The length normalisation of a <c>--normalize</c> value.</summary>
    public static LengthNormalization Normalization(string name) => name switch
    {
        "none" => LengthNormalization.None,
        "tokens" => LengthNormalization.Tokens,
        "chars" => LengthNormalization.Characters,
        "bytes" => LengthNormalization.Bytes,
        _ => throw new LlgbmException($"--normalize {name}: expected one of {string.Join(", ", NormalizationChoices)}."),
    };

    /// <summary>The name results carry for a checkpoint directory: its last path component.</summary>
    public static string ModelName(string directory) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));

    /// <summary>The results as a table: one row per task and format.</summary>
    public static Table ResultsTable(IReadOnlyList<TaskEvaluation> results)
    {
        var table = new Table().AddColumns("task", "domain", "format", "adapter", "metric", "accuracy", "correct / n");
        foreach (var r in results)
            table.AddRow(
                Markup.Escape(r.Task), Markup.Escape(r.Domain), r.Format, Markup.Escape(r.Adapter ?? "-"), r.Metric,
                r.Accuracy.ToString("F4", System.Globalization.CultureInfo.InvariantCulture), $"{r.Correct} / {r.N}");
        return table;
    }

    /// <summary>Writes <see cref="ResultsTable"/> to <paramref name="output"/> as plain text.</summary>
    public static void WriteTable(TextWriter output, IReadOnlyList<TaskEvaluation> results) =>
        CommandAction.Write(output, ResultsTable(results));
}
