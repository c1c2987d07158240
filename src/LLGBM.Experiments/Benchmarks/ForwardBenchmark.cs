using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>Settings of <see cref="ForwardBenchmark.Run"/>.</summary>
public sealed record ForwardBenchmarkSettings
{
    /// <summary>The architecture measured (weights are random: speed does not depend on their values).</summary>
    public required Qwen2Config Config { get; init; }

    /// <summary>A name for the architecture in reports.</summary>
    public required string ModelName { get; init; }

    /// <summary>Sequences per forward pass.</summary>
    public int Batch { get; init; } = 4;

    /// <summary>Tokens per sequence.</summary>
    public int Length { get; init; } = 128;

    /// <summary>Untimed passes before measuring.</summary>
    public int Warmup { get; init; } = 2;

    /// <summary>Timed passes.</summary>
    public int Iterations { get; init; } = 5;

    /// <summary>Logits at every position (true) or only at the last token (false, as in delta computation).</summary>
    public bool AllLogits { get; init; }

    /// <summary>Side of the square matmul used as the peak-throughput reference.</summary>
    public int MatmulSize { get; init; } = 2048;

    /// <summary>Device to run on.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>Parameter and compute dtype.</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    /// <summary>How attention is computed.</summary>
    public AttentionImplementation Attention { get; init; } = AttentionImplementation.Sdpa;
}

/// <summary>What <see cref="ForwardBenchmark.Run"/> measured.</summary>
public sealed record ForwardBenchmarkResult(
    string Model,
    string Device,
    string Dtype,
    string Attention,
    int Batch,
    int Length,
    long Parameters,
    double SecondsPerForward,
    double TokensPerSecond,
    double ForwardGflops,
    double AchievedGflopsPerSecond,
    int MatmulSize,
    double MatmulGflopsPerSecond,
    double ModelFlopUtilisation);

/// <summary>
/// Times the Qwen2 forward pass and compares its achieved FLOP rate with that of a large matmul measured in the
/// same run (model FLOP utilisation relative to the machine's practical peak).
/// </summary>
public static class ForwardBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> receives one line per phase.</summary>
    public static ForwardBenchmarkResult Run(ForwardBenchmarkSettings s, Action<string>? progress = null)
    {
        using var noGrad = no_grad();
        progress?.Invoke($"building {s.ModelName} on {s.Device} ({s.Dtype})");
        using var model = new Qwen2ForCausalLM(s.Config, s.Device, s.Dtype);
        model.eval();
        var parameters = model.parameters().Sum(p => p.numel());
        using var generator = new Generator(0);
        using var ids = randint(s.Config.VocabSize, [s.Batch, s.Length], generator: generator, dtype: ScalarType.Int64).to(s.Device);
        var options = new ForwardOptions
        {
            Logits = s.AllLogits ? LogitPositions.All : LogitPositions.Last,
            Attention = s.Attention,
        };

        progress?.Invoke($"forward: {s.Warmup} warm-up and {s.Iterations} timed passes of [{s.Batch} x {s.Length}] tokens");
        var forwardSeconds = BenchmarkTimer.Median(s.Device, s.Warmup, s.Iterations, () => model.Forward(ids, options).Dispose());

        progress?.Invoke($"reference: {s.MatmulSize}x{s.MatmulSize} matmul");
        using var a = randn([s.MatmulSize, s.MatmulSize], generator: generator).to_type(s.Dtype).to(s.Device);
        using var b = randn([s.MatmulSize, s.MatmulSize], generator: generator).to_type(s.Dtype).to(s.Device);
        var matmulSeconds = BenchmarkTimer.Median(s.Device, 2, Math.Max(3, s.Iterations), () => a.matmul(b).Dispose());

        var flops = ForwardFlops.Count(s.Config, s.Batch, s.Length, s.AllLogits ? s.Length : 1);
        var achieved = flops / forwardSeconds / 1e9;
        var peak = 2.0 * Math.Pow(s.MatmulSize, 3) / matmulSeconds / 1e9;
        return new ForwardBenchmarkResult(
            s.ModelName, s.Device.ToString(), s.Dtype.ToString(), s.Attention.ToString(), s.Batch, s.Length, parameters,
            forwardSeconds, s.Batch * s.Length / forwardSeconds, flops / 1e9, achieved, s.MatmulSize, peak, achieved / peak);
    }
}
