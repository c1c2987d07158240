using System.CommandLine;
using System.Globalization;
using LLGBM.Conditioning;
using LLGBM.Experiments;
using LLGBM.Generators;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm generator train</c>: trains a LoRA generator from a config file.</summary>
public static class GeneratorCommand
{
    /// <summary>Creates the <c>generator</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("generator", "LoRA generators: hyper-networks from a batch of a task's prompts to an adapter.");
        command.Subcommands.Add(CreateTrain());
        command.Subcommands.Add(CreateEvaluate());
        command.Subcommands.Add(GeneratorRobustnessCommand.Create());
        command.Subcommands.Add(CreateTransfer());
        return command;
    }

    static Command CreateTransfer()
    {
        var predictor = new Option<string>("--predictor")
        {
            Description = "The two-stage run whose predictor (conditions → δ̂) is used, e.g. trained on backbone A.",
            Required = true,
        };
        var decoder = new Option<string>("--decoder")
        {
            Description = "The two-stage run whose decoder (δ → LoRA) is used and whose backbone, tasks and teachers the composition is evaluated on.",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "The results file to write (JSON).", Required = true };
        var encodings = new Option<string?>("--encodings") { Description = "Encoding cache directory (default: the decoder run's RUNS/encodings)." };
        var allow = new Option<bool>("--allow-incompatible")
        {
            Description = "When the runs cannot compose, write the reason into --out and succeed instead of failing.",
        };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "transfer",
            "Drives one two-stage run's decoder with another two-stage run's delta predictor (cross-backbone transfer: both supervised with delta_kind " +
            "Meaning on the same text pairs) and evaluates the composition on the decoder run's held-out and in-domain tasks — with δ̂ as predicted " +
            "(transfer-raw) and moved to the decoder run's per-coordinate scale (transfer: standardised with the predictor run's teacher-delta mean and std, " +
            "rescaled with the decoder run's) — next to the decoder run itself (native) and its backbone's base model, oracle teachers, " +
            "mean teacher and random adapter; writes one JSON file.")
        {
            predictor, decoder, output, encodings, allow, device,
        };
        CommandAction.Set(command, parse =>
        {
            var decoderRun = parse.GetValue(decoder)!;
            var decoderConfig = GeneratorConfig.Load(Path.Combine(decoderRun, GeneratorRun.ConfigFile));
            var info = GeneratorRun.ReadRunFile(decoderRun);
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            var cache = parse.GetValue(encodings) ?? RunsLayout.OfGeneratorRun(decoderRun).Encodings;
            ISentenceEncoder? encoder = null;
            var err = CommandAction.Err(parse);
            try
            {
                var result = GeneratorTransfer.Evaluate(parse.GetValue(predictor)!, decoderRun,
                    () => ConditionEncoding.From(
                        encoder = SentenceEncoders.OpenCached(decoderConfig.Encoder, info.Inputs.Base, decoderConfig.Seed, cache, torchDevice)),
                    line => err.WriteLine($"[transfer] {line}"), torchDevice);
                if (!result.Composable && !parse.GetValue(allow))
                    throw new LlgbmException($"--predictor {result.Predictor} cannot drive --decoder {result.Decoder}: {result.Reason}");
                GeneratorTransfer.Write(parse.GetValue(output)!, result);
                var outWriter = CommandAction.Out(parse);
                if (result.Composable)
                    PrintResults(outWriter, new GeneratorEvaluation(result.Step, result.Results, null, null));
                else
                    outWriter.WriteLine($"not composable: {result.Reason}");
                outWriter.WriteLine($"wrote {parse.GetValue(output)}");
                return 0;
            }
            finally
            {
                encoder?.Dispose();
            }
        });
        return command;
    }

    static Command CreateEvaluate()
    {
        var run = new Option<string>("--run") { Description = "The generator run directory.", Required = true };
        var encodings = new Option<string?>("--encodings") { Description = "Encoding cache directory (default: the run's RUNS/encodings)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "evaluate",
            "Evaluates a run again at its latest checkpoint, with every reference method (base, oracle, mean teacher, random adapter), " +
            "and rewrites RUN/results/heldout.json.")
        {
            run, encodings, device,
        };
        CommandAction.Set(command, parse =>
        {
            var runDir = parse.GetValue(run)!;
            var config = GeneratorConfig.Load(Path.Combine(runDir, GeneratorRun.ConfigFile));
            var info = GeneratorRun.ReadRunFile(runDir);
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            var cache = parse.GetValue(encodings) ?? RunsLayout.OfGeneratorRun(runDir).Encodings;
            using var encoder = SentenceEncoders.OpenCached(config.Encoder, info.Inputs.Base, config.Seed, cache, torchDevice);
            var err = CommandAction.Err(parse);
            var result = GeneratorRun.Reevaluate(runDir, ConditionEncoding.From(encoder), line => err.WriteLine($"[generator] {line}"), torchDevice);
            PrintResults(CommandAction.Out(parse), result);
            return 0;
        });
        return command;
    }

    static Command CreateTrain()
    {
        var config = new Option<string>("--config") { Description = "The experiment's config file (see configs/*.json).", Required = true };
        var output = new Option<string?>("--out")
        {
            Description = "The run directory (default: runs/generators/NAME, with -seedS, -ldX, -fracF and -ckptN suffixes for overrides).",
        };
        var runs = new Option<string>("--runs")
        {
            Description = "Where the inputs live by default (base-tiny, suite, teachers, deltas).",
            DefaultValueFactory = _ => RunsLayout.DefaultRoot,
        };
        var baseModel = new Option<string?>("--base") { Description = "Base checkpoint directory (default: RUNS/base-tiny)." };
        var tasks = new Option<string?>("--tasks") { Description = "Task suite root (default: RUNS/suite)." };
        var teachers = new Option<string?>("--teachers") { Description = "Teacher pool (default: RUNS/teachers)." };
        var deltas = new Option<string?>("--deltas") { Description = "Delta cache, filled when entries are missing (default: RUNS/deltas)." };
        var encodings = new Option<string?>("--encodings") { Description = "Encoding cache directory (default: RUNS/encodings)." };
        var seed = new Option<long?>("--seed") { Description = "Overrides the config's seed." };
        var steps = new Option<int?>("--steps") { Description = "Overrides the config's number of steps." };
        var lambdaDelta = new Option<double?>("--lambda-delta") { Description = "Overrides λ_δ (a constant weight), for λ sweeps." };
        var encoder = new Option<string?>("--encoder") { Description = "Overrides the condition encoder: minilm, lm-mean or random." };
        var trainFraction = new Option<double?>("--train-fraction")
        {
            Description = "The low-data regime: keeps this fraction of the training tasks (every domain keeps one or more; " +
                "the others are evaluated with the held-out tasks).",
        };
        var teacherCheckpoints = new Option<int?>("--teacher-checkpoints") { Description = "Uses only the last N checkpoints of each teacher (0: all)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "train",
            "Trains a generator run: metrics.jsonl and TensorBoard events (RUN/events), checkpoints (resumed when the run exists), " +
            "and the held-out evaluation in RUN/results/heldout.json against the base model, each task's oracle teacher and the mean training teacher.")
        {
            config, output, runs, baseModel, tasks, teachers, deltas, encodings, seed, steps, lambdaDelta, encoder, trainFraction, teacherCheckpoints, device,
        };
        CommandAction.Set(command, parse =>
        {
            var loaded = GeneratorConfig.Load(parse.GetValue(config)!);
            var name = loaded.Name;
            if (parse.GetValue(seed) is { } s)
            {
                loaded = loaded with { Seed = s };
                name += $"-seed{s}";
            }
            if (parse.GetValue(steps) is { } n)
                loaded = loaded with { Steps = n };
            if (parse.GetValue(lambdaDelta) is { } ld)
            {
                loaded = loaded with { Delta = LossWeight.Constant(ld) };
                name += "-ld" + ld.ToString("G4", CultureInfo.InvariantCulture);
            }
            if (parse.GetValue(encoder) is { } e)
            {
                loaded = loaded with { Encoder = e };
                name += "-" + e;
            }
            if (parse.GetValue(trainFraction) is { } f)
            {
                loaded = loaded with { TrainFraction = f };
                name += "-frac" + f.ToString("G4", CultureInfo.InvariantCulture);
            }
            if (parse.GetValue(teacherCheckpoints) is { } c)
            {
                loaded = loaded with { TeacherCheckpoints = c };
                name += $"-ckpt{c}";
            }
            loaded = (loaded with { Name = name }).Validate();
            var layout = new RunsLayout(parse.GetValue(runs)!);
            var defaults = layout.GeneratorInputs;
            var inputs = new GeneratorInputs(
                parse.GetValue(baseModel) ?? defaults.Base,
                parse.GetValue(tasks) ?? defaults.Tasks,
                parse.GetValue(teachers) ?? defaults.Teachers,
                parse.GetValue(deltas) ?? defaults.Deltas);
            var runDir = parse.GetValue(output) ?? layout.Generator(name);
            var err = CommandAction.Err(parse);
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            using var sentenceEncoder = SentenceEncoders.OpenCached(
                loaded.Encoder, inputs.Base, loaded.Seed, parse.GetValue(encodings) ?? layout.Encodings, torchDevice);
            err.WriteLine(
                $"[generator] {runDir}: {loaded.Architecture}, λ_w {loaded.Weight.Value}, λ_δ {loaded.Delta.Value}, λ_kl {loaded.Kl.Value}, " +
                $"λ_n {loaded.Norm.Value}, encoder {sentenceEncoder.Identity}");
            var result = GeneratorRun.Train(
                loaded, inputs, runDir, ConditionEncoding.From(sentenceEncoder), line => err.WriteLine($"[generator] {line}"), torchDevice);
            PrintResults(CommandAction.Out(parse), result);
            CommandAction.Out(parse).WriteLine($"{runDir}: {GeneratorRun.ResultsFolder}/{GeneratorRun.HeldOutFile}, {GeneratorRun.MetricsFile}");
            return 0;
        });
        return command;
    }

    /// <summary>Prints the held-out table: per task, each method's accuracy (mean ± std over conditions) and delta cosine.</summary>
    public static void PrintResults(TextWriter output, GeneratorEvaluation result)
    {
        var methods = result.Results.Select(r => r.Method).Distinct().ToList();
        var table = new Table().AddColumn("split").AddColumn("task");
        foreach (var m in methods)
            table.AddColumn(m);
        foreach (var split in result.Results.Select(r => r.Split).Distinct())
        {
            var rows = result.Results.Where(r => r.Split == split).ToList();
            foreach (var task in rows.Select(r => r.Task).Distinct())
            {
                var cells = new List<string> { split, task };
                foreach (var m in methods)
                    cells.Add(rows.FirstOrDefault(r => r.Task == task && r.Method == m) is { } r
                        ? $"{r.Mean:P1}" + (r.Accuracies.Count > 1 ? $" ± {r.Std:P1}" : "") + (r.DeltaCosine is { } c ? $" (δ-cos {c:F2})" : "")
                        : "-");
                table.AddRow(cells.ToArray());
            }
            var means = new List<string> { split, "mean" };
            foreach (var m in methods)
                means.Add(rows.Where(r => r.Method == m).ToList() is { Count: > 0 } of ? $"{of.Average(r => r.Mean):P1}" : "-");
            table.AddRow(means.ToArray());
        }
        CommandAction.Write(output, table);
        static string S(ConditionSensitivity? s) => s is null ? "-" : $"{s.Ratio:F2} (spread / norm {s.RelativeSpread:F3})";
        output.WriteLine(
            $"condition sensitivity, across-task / within-task distance: held-out {S(result.HeldOutSensitivity)}, training {S(result.TrainSensitivity)}");
    }
}
