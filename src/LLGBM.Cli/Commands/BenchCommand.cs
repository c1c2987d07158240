using System.CommandLine;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Conditioning;
using LLGBM.Experiments;
using LLGBM.Experiments.Benchmarks;
using LLGBM.Generators;
using LLGBM.Model;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm bench …</c>: performance benchmarks, reported as ratios against a reference in the same run.</summary>
public static class BenchCommand
{
    /// <summary>Creates the <c>bench</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var bench = new Command("bench", "Performance benchmarks, reported against a reference measured in the same run.");
        bench.Subcommands.Add(CreateForward());
        bench.Subcommands.Add(CreateDelta());
        bench.Subcommands.Add(CreateGenerator());
        bench.Subcommands.Add(CreateScalars());
        bench.Subcommands.Add(CreateTeachers());
        return bench;
    }

    static Command CreateScalars()
    {
        var preset = new Option<string>("--preset")
        {
            Description = "Architecture of the random-weight model (a preset name: micro, tiny, ...).",
            DefaultValueFactory = _ => "tiny",
        };
        var seconds = new Option<double>("--seconds") { Description = "How long to run the rounds.", DefaultValueFactory = _ => 300 };
        var command = new Command(
            "scalars",
            "Stress test of TorchSharp scalar lifetimes: forward passes with a LoRA set, sampled generation and a training step of the adapter losses in a " +
            "loop while another thread forces garbage collections and waits for finalizers without pause; every round must match the first bit for bit. " +
            "A scalar freed while libtorch reads it shows as a native crash or a mismatch.")
        {
            preset, seconds,
        };
        CommandAction.Set(command, parse =>
        {
            var err = CommandAction.Err(parse);
            var result = ScalarStress.Run(parse.GetValue(preset)!, parse.GetValue(seconds), line => err.WriteLine($"[bench] {line}"));
            CommandAction.Out(parse).WriteLine(
                $"{result.Rounds} rounds (each a forward pass, a generation and a training step) in {result.Seconds:F0} s under {result.Collections} forced " +
                $"collections; every round matched the first");
            return 0;
        });
        return command;
    }

    static Command CreateTeachers()
    {
        var preset = new Option<string>("--preset")
        {
            Description = "Architecture of the random-weight base model (a preset name: tiny, micro, ...).",
            DefaultValueFactory = _ => "tiny",
        };
        var counts = new Option<int[]>("--teachers")
        {
            Description = "Numbers of teachers trained together to measure.",
            DefaultValueFactory = _ => [4, 16, 32],
            AllowMultipleArgumentsPerToken = true,
        };
        var steps = new Option<int>("--steps") { Description = "Timed training steps per measurement.", DefaultValueFactory = _ => 4 };
        var batch = new Option<int>("--batch") { Description = "Each teacher's examples per step.", DefaultValueFactory = _ => 32 };
        var sameTask = new Option<bool>("--same-task")
        {
            Description = "Train every batched teacher on one task (default: the suite's tasks in turn, whose longest examples set the padded length).",
        };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON instead of a table." };
        var command = new Command(
            "teachers",
            "Teacher-steps per second of training teachers one at a time and N at once in one batched pass (teachers train --at-once N), " +
            "the speed-up measured against one at a time in the same run.")
        {
            preset, counts, steps, batch, sameTask, device, json,
        };
        CommandAction.Set(command, parse =>
        {
            var settings = new TeacherBenchmarkSettings
            {
                Preset = parse.GetValue(preset)!,
                TeacherCounts = parse.GetValue(counts) ?? [],
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                SameTask = parse.GetValue(sameTask),
                Device = TorchChoices.Device(parse.GetValue(device)!),
            };
            var result = TeacherBenchmark.Run(settings, line => CommandAction.Err(parse).WriteLine($"[bench] {line}"));
            if (parse.GetValue(json))
            {
                CommandAction.Out(parse).WriteLine(JsonSerializer.Serialize(result, LlgbmJson.Options));
                return 0;
            }
            var table = new Table().AddColumns("teachers at once", "ms per step", "teacher-steps / s", "speed-up");
            table.AddRow("1 (one at a time)", $"{result.OneAtATimeSecondsPerStep * 1e3:F0}", $"{result.OneAtATimeTeacherStepsPerSecond:F1}", "1.0×");
            foreach (var row in result.Batched)
                table.AddRow($"{row.Teachers}", $"{row.SecondsPerStep * 1e3:F0}", $"{row.TeacherStepsPerSecond:F1}", $"{row.SpeedUp:F1}×");
            CommandAction.Write(CommandAction.Out(parse), table);
            CommandAction.Out(parse).WriteLine(
                $"{result.Model} on {result.Device}, {result.BatchSize} examples per teacher-step, {result.Steps} timed steps each; " +
                $"batched teachers {(result.SameTask ? "all on one task" : "on the suite's tasks in turn")}");
            return 0;
        });
        return command;
    }

    static Command CreateGenerator()
    {
        var configs = new Option<string[]>("--config")
        {
            Description = "Configs to time (repeatable); the first is the reference of the ratios.",
            DefaultValueFactory = _ => ["configs/dnd-weight.json", "configs/multitask.json"],
            AllowMultipleArgumentsPerToken = true,
        };
        var runs = new Option<string>("--runs")
        {
            Description = "Where the inputs live (base-tiny, suite, teachers, deltas, encodings).",
            DefaultValueFactory = _ => RunsLayout.DefaultRoot,
        };
        var steps = new Option<int>("--steps") { Description = "Timed steps per config.", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first.", DefaultValueFactory = _ => 3 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON." };
        var command = new Command(
            "generator",
            "Median wall time of one training step of each config relative to the first (e.g. multitask against dnd-weight), " +
            "and the time to generate one adapter against the pool's mean teacher training time.")
        {
            configs, runs, steps, warmup, device, json,
        };
        CommandAction.Set(command, parse =>
        {
            var loaded = parse.GetValue(configs)!.Select(GeneratorConfig.Load).ToList();
            var layout = new RunsLayout(parse.GetValue(runs)!);
            var inputs = layout.GeneratorInputs;
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            var err = CommandAction.Err(parse);
            using var encoder = SentenceEncoders.OpenCached(loaded[0].Encoder, inputs.Base, loaded[0].Seed, layout.Encodings, torchDevice);
            var result = GeneratorBenchmark.Run(
                loaded, inputs, ConditionEncoding.From(encoder), parse.GetValue(warmup), parse.GetValue(steps), line => err.WriteLine($"[bench] {line}"),
                torchDevice);
            var output = CommandAction.Out(parse);
            if (parse.GetValue(json))
            {
                output.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, LlgbmJson.Line));
                return 0;
            }
            var table = new Spectre.Console.Table().AddColumns("config", "ms per step", $"× {result.Configs[0]}");
            for (var i = 0; i < result.Configs.Count; i++)
                table.AddRow(result.Configs[i], $"{result.StepSeconds[i] * 1000:F1}", $"{result.StepRatios[i]:F2}");
            CommandAction.Write(output, table);
            output.WriteLine(
                $"one adapter: {result.GenerateSeconds * 1000:F2} ms from an encoded condition, " +
                $"{result.EncodeAndGenerateSeconds * 1000:F1} ms with encoding; one teacher: {result.TeacherSeconds:F1} s of training; " +
                $"{result.Savings:F0}× less");
            return 0;
        });
        return command;
    }

    static Command CreateForward()
    {
        var preset = new Option<string>("--preset")
        {
            Description = "Architecture to measure (a preset name: tiny, micro, qwen2.5-0.5b, ...).",
            DefaultValueFactory = _ => "tiny",
        };
        var layers = new Option<int?>("--layers") { Description = "Override the preset's number of layers (e.g. a 0.5B-shaped model with fewer layers)." };
        var batch = new Option<int>("--batch") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 4 };
        var length = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 128 };
        var iterations = new Option<int>("--iters") { Description = "Timed passes (the median is reported).", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed passes first.", DefaultValueFactory = _ => 2 };
        var allLogits = new Option<bool>("--all-logits") { Description = "Compute logits at every position (default: last token only)." };
        var matmul = new Option<int>("--matmul-size") { Description = "Side of the reference square matmul.", DefaultValueFactory = _ => 2048 };
        var attention = new Option<string>("--attention") { Description = "sdpa or eager.", DefaultValueFactory = _ => "sdpa" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON instead of a table." };
        var command = new Command("forward", "Tokens per second of the Qwen2 forward pass, its GFLOP/s, and model FLOP utilisation relative to a large matmul.")
        {
            preset, layers, batch, length, iterations, warmup, allLogits, matmul, attention, device, dtype, json,
        };
        CommandAction.Set(command, parse =>
        {
            var name = parse.GetValue(preset)!;
            var config = Qwen2Presets.Get(name);
            if (parse.GetValue(layers) is { } n)
            {
                config = config with { NumHiddenLayers = n };
                name = $"{name} ({n} layers)";
            }
            var settings = new ForwardBenchmarkSettings
            {
                Config = config,
                ModelName = name,
                Batch = parse.GetValue(batch),
                Length = parse.GetValue(length),
                Iterations = parse.GetValue(iterations),
                Warmup = parse.GetValue(warmup),
                AllLogits = parse.GetValue(allLogits),
                MatmulSize = parse.GetValue(matmul),
                Attention = parse.GetValue(attention) switch
                {
                    "sdpa" => AttentionImplementation.Sdpa,
                    "eager" => AttentionImplementation.Eager,
                    var other => throw new LlgbmException($"--attention {other}: expected sdpa or eager."),
                },
                Device = TorchChoices.Device(parse.GetValue(device)!),
                Dtype = TorchChoices.Dtype(parse.GetValue(dtype)!),
            };
            if (settings.Batch <= 0 || settings.Length <= 0 || settings.Iterations <= 0)
                throw new LlgbmException("--batch, --seq and --iters must be positive.");
            var result = ForwardBenchmark.Run(settings, line => CommandAction.Err(parse).WriteLine($"[bench] {line}"));
            if (parse.GetValue(json))
            {
                CommandAction.Out(parse).WriteLine(JsonSerializer.Serialize(result, LlgbmJson.Options));
                return 0;
            }
            var table = new Table().AddColumns("measure", "value");
            table.AddRow("model", $"{result.Model}, {result.Parameters:N0} parameters");
            table.AddRow("device / dtype / attention", $"{result.Device} / {result.Dtype} / {result.Attention}");
            table.AddRow("batch x tokens", $"{result.Batch} x {result.Length}");
            table.AddRow("time per forward", $"{result.SecondsPerForward * 1e3:F2} ms");
            table.AddRow("tokens per second", $"{result.TokensPerSecond:N0}");
            table.AddRow("forward GFLOP", $"{result.ForwardGflops:F3}");
            table.AddRow("achieved GFLOP/s", $"{result.AchievedGflopsPerSecond:F1}");
            table.AddRow($"matmul {result.MatmulSize}² GFLOP/s", $"{result.MatmulGflopsPerSecond:F1}");
            table.AddRow("model FLOP utilisation (vs matmul)", $"{result.ModelFlopUtilisation:P1}");
            CommandAction.Write(CommandAction.Out(parse), table);
            return 0;
        });
        return command;
    }

    static Command CreateDelta()
    {
        var preset = new Option<string>("--preset")
        {
            Description = "Architecture to measure (a preset name: tiny, micro, qwen2.5-0.5b, ...); weights are random.",
            DefaultValueFactory = _ => "tiny",
        };
        var probes = new Option<int>("--probes")
        {
            Description = "Generic probes, tokenized byte-level (the tiny models' tokenizer).",
            DefaultValueFactory = _ => 5,
        };
        var probeBatch = new Option<int?>("--probe-batch") { Description = "Probes per forward pass (default: all of them in one)." };
        var adapters = new Option<int>("--adapters")
        {
            Description = "Random adapters whose deltas each timed round computes (one at a time, then batched).",
            DefaultValueFactory = _ => 16,
        };
        var microbatch = new Option<int>("--microbatch") { Description = "Adapters per batched delta call.", DefaultValueFactory = _ => 8 };
        var rank = new Option<int>("--rank")
        {
            Description = "LoRA rank of the adapters (on the teacher pool's modules q, k, v, gate, up, down).",
            DefaultValueFactory = _ => 8,
        };
        var iterations = new Option<int>("--iters")
        {
            Description = "Timed rounds, each running every measurement once (times are medians over rounds, ratios medians of the ratios within a round).",
            DefaultValueFactory = _ => 5,
        };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var threads = new Option<int?>("--threads")
        {
            Description = "libtorch CPU threads during the run (default: libtorch's own choice); fewer than the cores give steadier timings on a shared " +
                "machine.",
        };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON instead of a table." };
        var command = new Command(
            "delta",
            "Adapters per second of no-grad delta activations (one at a time and batched), and the cost of one differentiable delta pass relative to one " +
            "plain and one adapted forward pass over the same probes.")
        {
            preset, probes, probeBatch, adapters, microbatch, rank, iterations, warmup, device, dtype, threads, json,
        };
        CommandAction.Set(command, parse =>
        {
            var name = parse.GetValue(preset)!;
            var settings = new DeltaBenchmarkSettings
            {
                Config = Qwen2Presets.Get(name),
                ModelName = name,
                Probes = parse.GetValue(probes),
                ProbeBatch = parse.GetValue(probeBatch),
                Adapters = parse.GetValue(adapters),
                Microbatch = parse.GetValue(microbatch),
                Rank = parse.GetValue(rank),
                Iterations = parse.GetValue(iterations),
                Warmup = parse.GetValue(warmup),
                Device = TorchChoices.Device(parse.GetValue(device)!),
                Dtype = TorchChoices.Dtype(parse.GetValue(dtype)!),
                Threads = parse.GetValue(threads),
            }.Validate();
            var result = DeltaBenchmark.Run(settings, line => CommandAction.Err(parse).WriteLine($"[bench] {line}"));
            if (parse.GetValue(json))
            {
                CommandAction.Out(parse).WriteLine(JsonSerializer.Serialize(result, LlgbmJson.Options));
                return 0;
            }
            var table = new Table().AddColumns("measure", "value");
            table.AddRow("model", $"{result.Model}, {result.Parameters:N0} parameters");
            table.AddRow("device / dtype / CPU threads", $"{result.Device} / {result.Dtype} / {result.Threads}");
            table.AddRow("probes", $"{result.Probes} ({result.ProbeTokens:N0} tokens) in {result.ProbeBatchCount} batch(es) of up to {result.ProbeBatchSize}");
            table.AddRow("adapters", $"{result.Adapters} of rank {result.Rank} on {result.LoraTargets} ({result.AdapterParameters:N0} parameters each)");
            table.AddRow(
                "forward calls: base (cached) / per adapter / per batched call",
                $"{result.BaseForwardCalls} / {result.ForwardCallsPerAdapter:G4} / {result.ForwardCallsPerBatchedCall:G4}");
            table.AddRow("base forward (no adapter)", $"{result.SecondsBaseForward * 1e3:F2} ms");
            table.AddRow("adapted forward", $"{result.SecondsAdaptedForward * 1e3:F2} ms ({result.AdaptedForwardVsBaseForward:F2}x base)");
            table.AddRow(
                "no-grad delta, one at a time",
                $"{result.SecondsPerAdapter * 1e3:F2} ms, {result.AdaptersPerSecond:F1} adapters/s ({result.DeltaVsAdaptedForward:F2}x adapted forward)");
            table.AddRow(
                $"no-grad delta, batched by {result.Microbatch}",
                $"{result.BatchedAdaptersPerSecond:F1} adapters/s ({result.BatchedSpeedup:F2}x one at a time)");
            table.AddRow("differentiable delta (forward + backward)", $"{result.SecondsDifferentiableDelta * 1e3:F2} ms");
            table.AddRow("  relative to base forward", $"{result.DifferentiableDeltaVsBaseForward:F2}x");
            table.AddRow("  relative to adapted forward", $"{result.DifferentiableDeltaVsAdaptedForward:F2}x");
            CommandAction.Write(CommandAction.Out(parse), table);
            return 0;
        });
        return command;
    }
}
