using System.Diagnostics;
using LLGBM.Checkpoints;
using LLGBM.Model;
using LLGBM.Tasks.Synthetic;
using LLGBM.Teachers;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>Settings of <see cref="TeacherBenchmark.Run"/>.</summary>
public sealed record TeacherBenchmarkSettings
{
    /// <summary>The architecture (a preset; weights are random: speed does not depend on their values).</summary>
    public string Preset { get; init; } = "tiny";

    /// <summary>The numbers of teachers trained together that are measured.</summary>
    public IReadOnlyList<int> TeacherCounts { get; init; } = [4, 16, 32];

    /// <summary>Timed training steps per measurement.</summary>
    public int Steps { get; init; } = 4;

    /// <summary>Each teacher's examples per step (the teacher stage's default).</summary>
    public int BatchSize { get; init; } = new TeacherTrainingSettings().BatchSize;

    /// <summary>
    /// Train every batched teacher on the first task (rows of one length distribution) instead of on the suite's tasks in
    /// turn, whose longest examples set the padded length of the whole batch.
    /// </summary>
    public bool SameTask { get; init; }

    /// <summary>Where to run.</summary>
    public Device Device { get; init; } = CPU;
}

/// <summary>Teachers trained together: time per step and throughput against one at a time.</summary>
/// <param name="Teachers">Teachers per batched pass.</param>
/// <param name="SecondsPerStep">Wall time of one step of all of them.</param>
/// <param name="TeacherStepsPerSecond">Teacher-steps per second.</param>
/// <param name="SpeedUp">Throughput relative to one teacher at a time, measured in the same run.</param>
public sealed record TeacherBenchmarkRow(int Teachers, double SecondsPerStep, double TeacherStepsPerSecond, double SpeedUp);

/// <summary>What <see cref="TeacherBenchmark.Run"/> measured.</summary>
/// <param name="Model">The preset.</param>
/// <param name="Device">Where it ran.</param>
/// <param name="BatchSize">Each teacher's examples per step.</param>
/// <param name="Steps">Timed steps per measurement.</param>
/// <param name="OneAtATimeSecondsPerStep">One teacher's step, trained alone (<see cref="TeacherTrainer.Train"/>).</param>
/// <param name="OneAtATimeTeacherStepsPerSecond">Teacher-steps per second one at a time.</param>
/// <param name="SameTask">Whether the batched teachers all trained on one task.</param>
/// <param name="Batched">Each batched measurement (<see cref="TeacherTrainer.TrainBatched"/>).</param>
public sealed record TeacherBenchmarkResult(
    string Model, string Device, int BatchSize, int Steps, double OneAtATimeSecondsPerStep, double OneAtATimeTeacherStepsPerSecond,
    bool SameTask, IReadOnlyList<TeacherBenchmarkRow> Batched);

/// <summary>
/// Teacher-steps per second of training teachers one at a time and N at once in one batched pass, on a base model of
/// random weights and the synthetic suite's training examples; each measurement follows an untimed step.
/// </summary>
public static class TeacherBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> receives one line per measurement.</summary>
    public static TeacherBenchmarkResult Run(TeacherBenchmarkSettings s, Action<string>? progress = null)
    {
        if (s.Steps <= 0 || s.BatchSize <= 0 || s.TeacherCounts.Count == 0 || s.TeacherCounts.Any(n => n <= 0))
            throw new LlgbmException("Teacher benchmark: steps, batch size and every teacher count must be positive.");
        using var model = new Qwen2ForCausalLM(Qwen2Presets.Get(s.Preset), s.Device);
        var tokenizer = new ByteLevelTokenizer();
        var suite = SyntheticSuite.Build(new SyntheticSuiteSettings { TrainCount = 64, TestCount = 1 })
            .Where(t => t.Spec.Components.Count == 0)
            .ToList();
        TeacherTrainingSettings Settings(int steps) => new()
        {
            Steps = steps,
            BatchSize = s.BatchSize,
            WarmupSteps = 1,
            Checkpoints = 1,
            Every = 1,
            Device = s.Device,
        };
        double Time(Action train)
        {
            var watch = Stopwatch.StartNew();
            train();
            BenchmarkTimer.Synchronize(s.Device);
            return watch.Elapsed.TotalSeconds;
        }
        static void Ignore(int step, Lora.LoraSet adapter, double loss)
        {
        }

        TeacherTrainer.Train(model, tokenizer, suite[0], Settings(1), Ignore);
        var alone = Time(() => TeacherTrainer.Train(model, tokenizer, suite[0], Settings(s.Steps), Ignore)) / s.Steps;
        progress?.Invoke($"one at a time: {alone * 1000:F0} ms per teacher-step");
        var rows = new List<TeacherBenchmarkRow>();
        foreach (var n in s.TeacherCounts)
        {
            var tasks = Enumerable.Range(0, n).Select(i => suite[s.SameTask ? 0 : i % suite.Count]).ToList();
            TeacherTrainer.TrainBatched(model, tokenizer, tasks, Settings(1), (_, _, _, _) => { });
            var perStep = Time(() => TeacherTrainer.TrainBatched(model, tokenizer, tasks, Settings(s.Steps), (_, _, _, _) => { })) / s.Steps;
            rows.Add(new TeacherBenchmarkRow(n, perStep, n / perStep, n / perStep * alone));
            progress?.Invoke($"{n} at once: {perStep * 1000:F0} ms per step, {n / perStep * alone:F1}× the teacher-steps per second");
        }
        return new TeacherBenchmarkResult(s.Preset, s.Device.ToString(), s.BatchSize, s.Steps, alone, 1 / alone, s.SameTask, rows);
    }
}
