using System.Diagnostics;
using LLGBM.Experiments;
using LLGBM.Generators;
using LLGBM.Teachers;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>The figures of <c>llgbm bench generator</c>.</summary>
/// <param name="Configs">The configs timed, in order.</param>
/// <param name="StepSeconds">Median seconds per training step of each config.</param>
/// <param name="StepRatios">Each config's step time over the first config's.</param>
/// <param name="GenerateSeconds">Median seconds to generate one adapter from an encoded condition (the first config's generator).</param>
/// <param name="EncodeAndGenerateSeconds">Median seconds to encode K prompts and generate the adapter.</param>
/// <param name="TeacherSeconds">Mean training seconds of one teacher in the pool (its manifest's record).</param>
/// <param name="Savings">Teacher seconds over encode-and-generate seconds.</param>
public sealed record GeneratorBenchmarkResult(
    IReadOnlyList<string> Configs, IReadOnlyList<double> StepSeconds, IReadOnlyList<double> StepRatios,
    double GenerateSeconds, double EncodeAndGenerateSeconds, double TeacherSeconds, double Savings);

/// <summary>
/// Times generator training steps of several configs on the same data (the first one is the reference, e.g.
/// dnd-weight against multitask), and adapter generation against teacher training.
/// </summary>
public static class GeneratorBenchmark
{
    /// <summary>Runs the benchmark: <paramref name="steps"/> timed steps per config after <paramref name="warmup"/>.</summary>
    public static GeneratorBenchmarkResult Run(
        IReadOnlyList<GeneratorConfig> configs, GeneratorInputs inputs, ConditionEncoding encoding, int warmup, int steps,
        Action<string>? log = null, Device? device = null)
    {
        var first = configs[0];
        using var data = GeneratorData.Load(inputs, first with { Steps = 1 }, encoding.Encode, encoding.Identity, log, device);
        var medians = new List<double>();
        double generate = 0, encodeAndGenerate = 0;
        foreach (var config in configs)
        {
            var run = Path.Combine(Path.GetTempPath(), "llgbm-bench-" + Guid.NewGuid().ToString("N"));
            var timed = config with { Steps = warmup + steps, LogEvery = warmup + steps, CheckpointEvery = warmup + steps, EvalEvery = 0, WarmupSteps = 0 };
            try
            {
                using var generator = GeneratorFactory.Create(
                    timed, data.Teachers.Lora, data.Model.Config, data.Conditions.Dim, (int)data.Embedder.Dim, device);
                var times = new List<double>();
                GeneratorTrainer.Train(generator, data, timed, run, stepSeconds: (step, seconds) =>
                {
                    if (step > warmup)
                        times.Add(seconds);
                });
                medians.Add(Median(times));
                log?.Invoke($"{config.Name}: {medians[^1] * 1000:F1} ms per step (median of {times.Count})");
                if (ReferenceEquals(config, first))
                    (generate, encodeAndGenerate) = TimeGeneration(generator, data, encoding, config, device);
            }
            finally
            {
                if (Directory.Exists(run))
                    Directory.Delete(run, true);
            }
        }
        var teacherSeconds = TeacherPool.ReadManifest(inputs.Teachers).Average(m => m.TrainingSeconds);
        return new GeneratorBenchmarkResult(
            [.. configs.Select(c => c.Name)], medians, [.. medians.Select(m => m / medians[0])],
            generate, encodeAndGenerate, teacherSeconds, teacherSeconds / encodeAndGenerate);
    }

    static (double Generate, double EncodeAndGenerate) TimeGeneration(
        LoraGenerator generator, GeneratorData data, ConditionEncoding encoding, GeneratorConfig config, Device? device)
    {
        generator.eval();
        var task = data.TrainTasks[0].Spec.Name;
        var texts = data.Conditions.Texts(task).Take(config.ConditionPrompts).ToList();
        var generateTimes = new List<double>();
        var fullTimes = new List<double>();
        for (var i = 0; i < 12; i++)
        {
            using (no_grad())
            using (var condition = data.Conditions.Sample(task, config.ConditionPrompts, i).unsqueeze(0).to(device ?? CPU))
            {
                var clock = Stopwatch.StartNew();
                using var set = generator.Generate(condition);
                generateTimes.Add(clock.Elapsed.TotalSeconds);
            }
            var full = Stopwatch.StartNew();
            // Each round encodes new texts, so an encoding cache cannot hide the encoder's cost.
            var fresh = texts.Select(t => t + new string(' ', i + 1)).ToList();
            using var adapter = GeneratorRun.GenerateOne(generator, encoding, fresh, device);
            fullTimes.Add(full.Elapsed.TotalSeconds);
        }
        return (Median(generateTimes.Skip(2).ToList()), Median(fullTimes.Skip(2).ToList()));
    }

    static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN
            : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2]
            : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
