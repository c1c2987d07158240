using System.CommandLine;
using LLGBM.Checkpoints;
using LLGBM.Experiments;
using LLGBM.Model;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm base …</c>: base models as Hugging Face checkpoint directories.</summary>
public static class BaseCommand
{
    /// <summary>Creates the <c>base</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("base", "Base models as Hugging Face checkpoint directories.");
        command.Subcommands.Add(CreateInit());
        command.Subcommands.Add(CreatePretrain());
        return command;
    }

    static Command CreateInit()
    {
        var preset = new Option<string>("--preset") { Description = $"Architecture: {string.Join(", ", Qwen2Presets.All.Keys)}.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (config.json + model.safetensors).", Required = true };
        var seed = new Option<long>("--seed") { Description = "Seed of the N(0, 0.02) initialisation.", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var shard = new Option<long?>("--max-shard-bytes")
        {
            Description = "Split the weights into shards of at most this many bytes (with model.safetensors.index.json).",
        };
        var force = new Option<bool>("--force") { Description = "Replace a checkpoint already in --out." };
        var command = new Command("init", "Writes a freshly initialised Qwen2 model (weights N(0, 0.02), biases 0, norms 1) as a Hugging Face checkpoint.")
        {
            preset, output, seed, dtype, shard, force,
        };
        CommandAction.Set(command, parse =>
        {
            var config = Qwen2Presets.Get(parse.GetValue(preset)!);
            var dir = parse.GetValue(output)!;
            if (File.Exists(Path.Combine(dir, "config.json")) && !parse.GetValue(force))
                throw new LlgbmException($"--out {dir}: a checkpoint is already there; pass --force to replace it.");
            var storage = TorchChoices.Dtype(parse.GetValue(dtype)!);
            using var model = new Qwen2ForCausalLM(config);
            model.InitializeWeights(parse.GetValue(seed));
            Qwen2Checkpoint.Save(model, dir, storage, parse.GetValue(shard) ?? long.MaxValue);
            // The tiny presets are byte-level models: their checkpoints carry the byte-level tokenizer.
            if (parse.GetValue(preset) is { } name
                && (string.Equals(name, "tiny", StringComparison.OrdinalIgnoreCase) || string.Equals(name, "tiny-b", StringComparison.OrdinalIgnoreCase)))
                new Text.ByteLevelTokenizer().Save(dir);
            var parameters = model.parameters().Sum(p => p.numel());
            CommandAction.Out(parse).WriteLine(
                $"wrote {dir}: {parse.GetValue(preset)}, {parameters:N0} parameters, stored as {Qwen2Checkpoint.DtypeName(storage)}");
            return 0;
        });
        return command;
    }

    static Command CreatePretrain()
    {
        var preset = new Option<string>("--preset") { Description = "Architecture (tiny is the embedded base model).", DefaultValueFactory = _ => "tiny" };
        var output = new Option<string>("--out")
        {
            Description = "Checkpoint directory to write (reused when it holds the same recipe).",
            DefaultValueFactory = _ => RunsLayout.Default.Base,
        };
        var steps = new Option<int?>("--steps") { Description = "Optimiser steps (default: the recipe's)." };
        var seed = new Option<long>("--seed")
        {
            Description = "Seed of the initialisation, the example order and the synthetic suite.",
            DefaultValueFactory = _ => 0,
        };
        var evalLimit = new Option<int>("--eval-limit")
        {
            Description = "Test examples per task and format in the final evaluation.",
            DefaultValueFactory = _ => 100,
        };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var force = new Option<bool>("--force") { Description = "Pretrain again even when the directory holds this recipe's model." };
        var command = new Command(
            "pretrain",
            "Pretrains a base model on the instruction-prefixed synthetic suite, evaluates it with and without instructions, " +
            "and writes the checkpoint with its byte-level tokenizer. Progress goes to standard error: a progress bar on a terminal, " +
            "otherwise a line every 100 steps.")
        {
            preset, output, steps, seed, evalLimit, device, force,
        };
        CommandAction.Set(command, parse =>
        {
            var name = parse.GetValue(preset)!;
            var defaults = new Pretraining.BasePretrainingSettings { Config = Qwen2Presets.Get(name) };
            var recipe = new Pretraining.BaseModelRecipe
            {
                Preset = name,
                Training = defaults with
                {
                    Steps = parse.GetValue(steps) ?? defaults.Steps,
                    Seed = parse.GetValue(seed),
                    Device = TorchChoices.Device(parse.GetValue(device)!),
                },
                Suite = new Tasks.Synthetic.SyntheticSuiteSettings { Seed = parse.GetValue(seed) },
            };
            var err = CommandAction.Err(parse);
            var dir = parse.GetValue(output)!;
            var report = StepProgress.Run(err, "pretrain", 100, progress => Pretraining.BaseModelBuilder.Build(
                recipe, dir, parse.GetValue(evalLimit), parse.GetValue(force),
                p => progress.Step(new StepReport(null, p.Step, p.TotalSteps, p.Loss, $"  lr {p.LearningRate:G3}  {p.Elapsed.TotalSeconds:F0}s")),
                line => progress.Line($"[pretrain] {line}")));
            var table = new Table().AddColumns("domain", "instructed", "bare");
            foreach (var domain in Pretraining.BaseModelBuilder.ByDomain(report).GroupBy(r => r.Domain))
            {
                string Of(string format) => domain.Where(r => r.Format == format).Select(r => $"{r.Accuracy:P1}").FirstOrDefault() ?? "-";
                table.AddRow(domain.Key, Of("instructed"), Of("bare"));
            }
            double Mean(string format) => report.Evaluations.Where(e => e.Format == format).Average(e => e.Accuracy);
            table.AddRow("all tasks", $"{Mean("instructed"):P1}", $"{Mean("bare"):P1}");
            CommandAction.Write(CommandAction.Out(parse), table);
            CommandAction.Out(parse).WriteLine(
                $"{dir}: {(report.Cached ? "reused" : "pretrained")} ({report.TrainingSeconds:F0} s of training); " +
                $"per-task accuracies in {Pretraining.BaseModelBuilder.ReportName}");
            return 0;
        });
        return command;
    }
}
