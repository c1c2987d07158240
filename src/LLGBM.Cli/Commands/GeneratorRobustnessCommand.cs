using System.CommandLine;
using LLGBM.Conditioning;
using LLGBM.Experiments;
using LLGBM.Generators;
using LLGBM.Tasks.Synthetic;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm generator robustness</c>: accuracy of trained runs when their conditions are paraphrased or reformatted.</summary>
public static class GeneratorRobustnessCommand
{
    /// <summary>Creates the <c>robustness</c> subcommand of <c>generator</c>.</summary>
    public static Command Create()
    {
        var runs = new Option<string[]>("--run")
        {
            Description = "A finished generator run directory (repeat for several).",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string>("--out") { Description = "The results file (JSON) to write.", Required = true };
        var encodings = new Option<string?>("--encodings") { Description = "Encoding cache directory (default: each run's RUNS/encodings)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "robustness",
            "Evaluates finished runs at their latest checkpoint with the evaluation conditions of each held-out and in-domain task encoded as the suite " +
            "writes them, paraphrased (other wording of the prompt template) and reformatted (other layout, field order and casing), " +
            "always on the task's standard test examples; writes accuracies, the delta cosine to the oracle and the ΔW cosine between the adapters of " +
            "rewritten and original conditions, with the base model, oracle and mean teacher of each run's heldout.json, to --out.")
        {
            runs, output, encodings, device,
        };
        CommandAction.Set(command, parse =>
        {
            var err = CommandAction.Err(parse);
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            var dirs = parse.GetValue(runs)!;
            var transforms = Enum.GetValues<PromptTransform>();
            var results = new List<RobustnessResult>();
            for (var i = 0; i < dirs.Length; i++)
            {
                var runDir = dirs[i];
                var config = GeneratorConfig.Load(Path.Combine(runDir, GeneratorRun.ConfigFile));
                var info = GeneratorRun.ReadRunFile(runDir);
                var cache = parse.GetValue(encodings) ?? RunsLayout.OfGeneratorRun(runDir).Encodings;
                using var encoder = SentenceEncoders.OpenCached(config.Encoder, info.Inputs.Base, config.Seed, cache, torchDevice);
                err.WriteLine($"[robustness] {i + 1}/{dirs.Length} {runDir}");
                results.AddRange(
                    RobustnessEvaluator.EvaluateRun(
                        runDir, ConditionEncoding.From(encoder), transforms, line => err.WriteLine($"[robustness] {line}"), torchDevice));
            }
            var file = parse.GetValue(output)!;
            RobustnessEvaluator.Write(file, results);
            var table = new Table().AddColumn("run").AddColumn("split");
            foreach (var t in transforms)
                table.AddColumn(t.ToString().ToLowerInvariant());
            foreach (var group in results.Where(r => r.Method == "generated").GroupBy(r => (r.Run, r.Split)))
                table.AddRow([group.Key.Run, group.Key.Split, .. transforms.Select(t => group.Where(r => r.Transform == t).ToList() is { Count: > 0 } of
                    ? $"{of.Average(r => r.Mean):P1} (ΔW-cos {of.Average(r => r.AdapterCosine ?? double.NaN):F2})" : "-")]);
            var stdout = CommandAction.Out(parse);
            CommandAction.Write(stdout, table);
            stdout.WriteLine($"{file}: {results.Count} results");
            return 0;
        });
        return command;
    }
}
