using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>Wall-clock timing of benchmark bodies: warm-up runs, then medians of timed runs.</summary>
public static class BenchmarkTimer
{
    /// <summary>
    /// Median seconds of <paramref name="iterations"/> runs of <paramref name="body"/> after <paramref name="warmup"/>
    /// untimed ones; queued GPU work on <paramref name="device"/> is waited for before each clock reading.
    /// </summary>
    public static double Median(Device device, int warmup, int iterations, Action body) =>
        Median(Rounds(device, warmup, iterations, [body])[0]);

    /// <summary>
    /// Seconds of each body in each of <paramref name="iterations"/> rounds, [body][round], after
    /// <paramref name="warmup"/> untimed rounds. A round runs every body once, in order, so a change in the machine's
    /// load during the run affects all of them alike and ratios taken within a round stay comparable.
    /// </summary>
    public static double[][] Rounds(Device device, int warmup, int iterations, IReadOnlyList<Action> bodies)
    {
        if (iterations <= 0)
            throw new LlgbmException($"Benchmark: the number of timed runs must be positive (found {iterations}).");
        for (var i = 0; i < warmup; i++)
            foreach (var body in bodies)
                body();
        Synchronize(device);
        var times = bodies.Select(_ => new double[iterations]).ToArray();
        for (var i = 0; i < iterations; i++)
            for (var b = 0; b < bodies.Count; b++)
            {
                var watch = Stopwatch.StartNew();
                bodies[b]();
                Synchronize(device);
                times[b][i] = watch.Elapsed.TotalSeconds;
            }
        return times;
    }

    /// <summary>The median of <paramref name="values"/> (the upper one of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0)
            throw new LlgbmException("Benchmark: no timings to take the median of.");
        return sorted[sorted.Count / 2];
    }

    /// <summary>Waits for queued GPU work so that wall-clock timings are honest.</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA)
            cuda.synchronize(device);
    }
}
