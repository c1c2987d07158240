using System.CommandLine;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Cli.Benchmarks;
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
        return bench;
    }

    static Command CreateForward()
    {
        var preset = new Option<string>("--preset") { Description = "Architecture to measure (a preset name: tiny, micro, qwen2.5-0.5b, ...).", DefaultValueFactory = _ => "tiny" };
        var layers = new Option<int?>("--layers") { Description = "Override the preset's number of layers (e.g. a 0.5B-shaped model with fewer layers)." };
        var batch = new Option<int>("--batch") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 4 };
        var length = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 128 };
        var iterations = new Option<int>("--iters") { Description = "Timed passes (the median is reported).", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed passes first.", DefaultValueFactory = _ => 2 };
        var allLogits = new Option<bool>("--all-logits") { Description = "Compute logits at every position (default: last token only)." };
        var matmul = new Option<int>("--matmul-size") { Description = "Side of the reference square matmul.", DefaultValueFactory = _ => 2048 };
        var attention = new Option<string>("--attention") { Description = "sdpa or eager.", DefaultValueFactory = _ => "sdpa" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
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
                CommandAction.Out(parse).WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
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
}
