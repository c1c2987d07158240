using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Teachers;
using LLGBM.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>Settings of <see cref="DeltaBenchmark.Run"/>.</summary>
public sealed record DeltaBenchmarkSettings
{
    /// <summary>The architecture measured (weights are random: speed does not depend on their values).</summary>
    public required Qwen2Config Config { get; init; }

    /// <summary>A name for the architecture in reports.</summary>
    public required string ModelName { get; init; }

    /// <summary>The number of generic probes (<see cref="ProbeSet.Generic"/>).</summary>
    public int Probes { get; init; } = 5;

    /// <summary>Probes per forward pass of the embedder; null puts every probe into one batch.</summary>
    public int? ProbeBatch { get; init; }

    /// <summary>Random adapters whose deltas are computed per timed run.</summary>
    public int Adapters { get; init; } = 16;

    /// <summary>Adapters per <see cref="DeltaEmbedder.ComputeBatched"/> call.</summary>
    public int Microbatch { get; init; } = 8;

    /// <summary>LoRA rank of the adapters (which target the teacher pool's modules).</summary>
    public int Rank { get; init; } = 8;

    /// <summary>Untimed runs before measuring.</summary>
    public int Warmup { get; init; } = 1;

    /// <summary>Timed runs (the median is reported).</summary>
    public int Iterations { get; init; } = 5;

    /// <summary>Device to run on.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>Parameter and compute dtype.</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    /// <summary>
    /// libtorch's intra-op CPU threads during the run (restored afterwards); null keeps the current setting. On a
    /// machine shared with other work, fewer threads than cores give steadier timings.
    /// </summary>
    public int? Threads { get; init; }

    /// <summary>Checks the counts; returns this.</summary>
    public DeltaBenchmarkSettings Validate()
    {
        if (Probes < 1 || Adapters < 1 || Microbatch < 1 || Rank < 1 || Iterations < 1 || ProbeBatch is < 1 || Threads is < 1)
            throw new LlgbmException(
                $"bench delta: --probes, --adapters, --microbatch, --rank, --probe-batch, --iters and --threads must be positive (found {Probes}, " +
                $"{Adapters}, {Microbatch}, {Rank}, {ProbeBatch?.ToString() ?? "all"}, {Iterations}, {Threads?.ToString() ?? "default"}).");
        if (Warmup < 0)
            throw new LlgbmException($"bench delta: --warmup must not be negative (found {Warmup}).");
        return this;
    }
}

/// <summary>
/// What <see cref="DeltaBenchmark.Run"/> measured: times are medians over the timed rounds in seconds, ratios the
/// medians of the ratios within each round.
/// </summary>
/// <param name="Model">The architecture's name.</param>
/// <param name="Device">The device.</param>
/// <param name="Dtype">The compute dtype.</param>
/// <param name="Threads">libtorch's intra-op CPU threads during the run.</param>
/// <param name="Parameters">Parameters of the base model.</param>
/// <param name="Probes">Probes in the probe set.</param>
/// <param name="ProbeTokens">Real tokens over all probes (after truncation to the spec's maximum length).</param>
/// <param name="ProbeBatchSize">Probes per forward pass.</param>
/// <param name="ProbeBatchCount">Forward passes over the probe set (probe batches).</param>
/// <param name="Adapters">Adapters per timed run.</param>
/// <param name="Microbatch">Adapters per batched call.</param>
/// <param name="Rank">LoRA rank.</param>
/// <param name="LoraTargets">Targeted modules, comma-separated.</param>
/// <param name="AdapterParameters">Parameters of one adapter (A and B of every module).</param>
/// <param name="BaseForwardCalls">Forward calls the embedder made when it was built (the cached base pass).</param>
/// <param name="ForwardCallsPerAdapter">Forward calls per adapter when deltas are computed one at a time.</param>
/// <param name="ForwardCallsPerBatchedCall">Forward calls per <see cref="DeltaEmbedder.ComputeBatched"/> call.</param>
/// <param name="SecondsBaseForward">One plain forward pass of the base model over the probe batches, no adapter, no gradients.</param>
/// <param name="SecondsAdaptedForward">The same pass with one adapter applied, no gradients.</param>
/// <param name="SecondsPerAdapter">One no-grad delta, one adapter at a time (<see cref="DeltaEmbedder.Compute"/>).</param>
/// <param name="AdaptersPerSecond">No-grad deltas per second, one adapter at a time.</param>
/// <param name="BatchedAdaptersPerSecond">No-grad deltas per second with <see cref="DeltaEmbedder.ComputeBatched"/>.</param>
/// <param name="BatchedSpeedup">Batched over one-at-a-time throughput.</param>
/// <param name="DeltaVsAdaptedForward">One no-grad delta over one adapted forward pass (near 1: the base pass is cached).</param>
/// <param name="AdaptedForwardVsBaseForward">The adapted forward pass over the plain one (the LoRA overhead).</param>
/// <param name="SecondsDifferentiableDelta">Δ of one adapter and the gradient of a scalar loss on Δ with respect to its A and B.</param>
/// <param name="DifferentiableDeltaVsBaseForward">The differentiable delta pass over one plain forward pass.</param>
/// <param name="DifferentiableDeltaVsAdaptedForward">The differentiable delta pass over one adapted forward pass.</param>
public sealed record DeltaBenchmarkResult(
    string Model,
    string Device,
    string Dtype,
    int Threads,
    long Parameters,
    int Probes,
    long ProbeTokens,
    int ProbeBatchSize,
    int ProbeBatchCount,
    int Adapters,
    int Microbatch,
    int Rank,
    string LoraTargets,
    long AdapterParameters,
    int BaseForwardCalls,
    double ForwardCallsPerAdapter,
    double ForwardCallsPerBatchedCall,
    double SecondsBaseForward,
    double SecondsAdaptedForward,
    double SecondsPerAdapter,
    double AdaptersPerSecond,
    double BatchedAdaptersPerSecond,
    double BatchedSpeedup,
    double DeltaVsAdaptedForward,
    double AdaptedForwardVsBaseForward,
    double SecondsDifferentiableDelta,
    double DifferentiableDeltaVsBaseForward,
    double DifferentiableDeltaVsAdaptedForward);

/// <summary>
/// Times delta-activation computation (<see cref="DeltaEmbedder"/>) on a randomly initialised model of a preset's
/// architecture with the generic probes tokenized byte-level (the tiny models' tokenizer; ids are taken modulo the
/// vocabulary when it is smaller than 256): throughput of no-grad deltas one adapter at a time and in microbatches,
/// and the cost of one differentiable delta pass (forward and backward with respect to A and B) relative to one
/// plain and one adapted forward pass over the same probe batches, measured in the same run. The base model is
/// frozen, as it is when a generator is trained through the deltas.
/// </summary>
public static class DeltaBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> receives one line per phase.</summary>
    public static DeltaBenchmarkResult Run(DeltaBenchmarkSettings s, Action<string>? progress = null)
    {
        s.Validate();
        var threads = get_num_threads();
        try
        {
            if (s.Threads is { } n)
                set_num_threads(n);
            return Measure(s, progress);
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    static DeltaBenchmarkResult Measure(DeltaBenchmarkSettings s, Action<string>? progress)
    {
        progress?.Invoke($"building {s.ModelName} on {s.Device} ({s.Dtype}, {get_num_threads()} CPU thread(s))");
        using var model = new Qwen2ForCausalLM(s.Config, s.Device, s.Dtype);
        model.InitializeWeights(0);
        model.eval();
        foreach (var p in model.parameters())
            p.requires_grad = false;
        var parameters = model.parameters().Sum(p => p.numel());

        var spec = DeltaSpec.Default;
        var probes = ProbeIds(s.Probes, s.Config.VocabSize);
        var lora = new TeacherTrainingSettings().Lora with { Rank = s.Rank, Alpha = 2 * s.Rank };
        var adapters = new List<LoraSet>();
        var batched = new List<LoraSet>();
        var reference = new List<(Tensor Ids, Tensor Mask)>();
        try
        {
            progress?.Invoke($"{s.Adapters} random rank-{s.Rank} adapters on {string.Join(", ", lora.TargetModules)}");
            for (var i = 0; i < s.Adapters; i++)
                adapters.Add(RandomAdapter(lora, s.Config, i, s.Device, s.Dtype));
            for (var start = 0; start < s.Adapters; start += s.Microbatch)
                batched.Add(Stack(adapters.Skip(start).Take(s.Microbatch).ToList()));
            var adapterParameters = adapters[0].Tensors().Sum(t => t.numel());

            progress?.Invoke($"embedder over {s.Probes} generic probes ({probes.Sum(p => p.Count)} tokens), base pass cached");
            using var embedder = new DeltaEmbedder(model, probes, spec, s.ProbeBatch);
            var baseCalls = embedder.ForwardCalls;
            reference.AddRange(ProbeBatches(probes, embedder.ProbeBatchSize, spec.MaxProbeLength, s.Device));
            var probeTokens = reference.Sum(b => b.Mask.sum().item<long>());

            var singleCalls = 0;
            var batchedCalls = 0;
            Action[] bodies =
            [
                () => ForwardPass(model, reference, null),
                () => ForwardPass(model, reference, adapters[0]),
                () =>
                {
                    var before = embedder.ForwardCalls;
                    foreach (var adapter in adapters)
                        embedder.ComputeNoGrad(adapter).Dispose();
                    singleCalls += embedder.ForwardCalls - before;
                },
                () =>
                {
                    var before = embedder.ForwardCalls;
                    using var noGrad = no_grad();
                    foreach (var set in batched)
                        embedder.ComputeBatched(set).Dispose();
                    batchedCalls += embedder.ForwardCalls - before;
                },
                () => DifferentiablePass(embedder, adapters[0]),
            ];
            progress?.Invoke(
                $"{s.Warmup} warm-up and {s.Iterations} timed rounds, each: a base and an adapted forward pass over {reference.Count} probe batch(es), "
                + $"{s.Adapters} no-grad deltas one at a time, the same in {batched.Count} batched call(s) of up to {s.Microbatch}, "
                + $"and one differentiable delta (gradient of ‖Δ‖² w.r.t. A and B)");
            var times = BenchmarkTimer.Rounds(s.Device, s.Warmup, s.Iterations, bodies);
            var (baseForward, adaptedForward, single, batch, differentiable) = (times[0], times[1], times[2], times[3], times[4]);
            var runs = s.Warmup + s.Iterations;
            double Ratio(double[] numerator, double[] denominator, double scale = 1) =>
                BenchmarkTimer.Median(numerator.Zip(denominator, (a, b) => scale * a / b));

            return new DeltaBenchmarkResult(
                s.ModelName, s.Device.ToString(), s.Dtype.ToString(), get_num_threads(), parameters,
                s.Probes, probeTokens, embedder.ProbeBatchSize, embedder.ProbeBatchCount,
                s.Adapters, s.Microbatch, s.Rank, string.Join(",", lora.TargetModules), adapterParameters,
                baseCalls, (double)singleCalls / (runs * s.Adapters), (double)batchedCalls / (runs * batched.Count),
                BenchmarkTimer.Median(baseForward), BenchmarkTimer.Median(adaptedForward), BenchmarkTimer.Median(single) / s.Adapters,
                s.Adapters / BenchmarkTimer.Median(single), s.Adapters / BenchmarkTimer.Median(batch), Ratio(single, batch),
                Ratio(single, adaptedForward, 1.0 / s.Adapters), Ratio(adaptedForward, baseForward),
                BenchmarkTimer.Median(differentiable), Ratio(differentiable, baseForward), Ratio(differentiable, adaptedForward));
        }
        finally
        {
            foreach (var set in batched.Concat(adapters))
                set.Dispose();
            foreach (var (ids, mask) in reference)
            {
                ids.Dispose();
                mask.Dispose();
            }
        }
    }

    /// <summary>
    /// The first <paramref name="count"/> generic probes as byte-level token ids (each id modulo
    /// <paramref name="vocab"/> when the vocabulary is smaller than the 256 byte ids).
    /// </summary>
    static IReadOnlyList<IReadOnlyList<int>> ProbeIds(int count, int vocab)
    {
        var ids = ProbeSet.Generic(count).Tokenize(new ByteLevelTokenizer());
        return vocab >= 256 ? ids : ids.Select(p => (IReadOnlyList<int>)p.Select(t => t % vocab).ToList()).ToList();
    }

    /// <summary>A rank-r adapter with A as PEFT initialises it and B drawn from N(0, 0.02²), so that Δ is not zero.</summary>
    static LoraSet RandomAdapter(LoraConfig config, Qwen2Config model, long seed, Device device, ScalarType dtype)
    {
        var set = LoraSet.Initialize(config, model, seed, device, dtype);
        using var generator = new Generator((ulong)(seed + 1_000_003));
        using var noGrad = no_grad();
        foreach (var module in set.Modules.Values)
        {
            using var std = 0.02.ToScalar();
            using var values = randn(module.B!.shape, generator: generator) * std;
            module.B.copy_(values);
        }
        return set;
    }

    /// <summary>One batched LoRA set holding <paramref name="adapters"/> in order (A [N, r, in], B [N, out, r]).</summary>
    static LoraSet Stack(IReadOnlyList<LoraSet> adapters)
    {
        var modules = new Dictionary<string, LoraModule>();
        using var noGrad = no_grad();
        foreach (var (path, first) in adapters[0].Modules)
            modules[path] = LoraModule.LowRank(
                stack(adapters.Select(a => a.Modules[path].A!).ToList(), 0),
                stack(adapters.Select(a => a.Modules[path].B!).ToList(), 0),
                first.Scale);
        return new LoraSet(modules, ownsTensors: true);
    }

    /// <summary>
    /// The probe batches as the embedder forms them: each probe truncated from the left to <paramref name="maxLength"/>,
    /// <paramref name="batchSize"/> probes per batch, right-padded, with an attention mask.
    /// </summary>
    static IEnumerable<(Tensor Ids, Tensor Mask)> ProbeBatches(IReadOnlyList<IReadOnlyList<int>> probes, int batchSize, int maxLength, Device device)
    {
        for (var start = 0; start < probes.Count; start += batchSize)
        {
            var chunk = probes.Skip(start).Take(batchSize).Select(p => p.Skip(Math.Max(0, p.Count - maxLength)).ToArray()).ToList();
            var length = chunk.Max(p => p.Length);
            var ids = new long[chunk.Count * length];
            var mask = new long[chunk.Count * length];
            for (var r = 0; r < chunk.Count; r++)
                for (var t = 0; t < chunk[r].Length; t++)
                {
                    ids[r * length + t] = chunk[r][t];
                    mask[r * length + t] = 1;
                }
            yield return (tensor(ids, [chunk.Count, length], device: device), tensor(mask, [chunk.Count, length], device: device));
        }
    }

    /// <summary>One forward pass over every probe batch without gradients, no logits (as the embedder runs it).</summary>
    static void ForwardPass(Qwen2ForCausalLM model, IReadOnlyList<(Tensor Ids, Tensor Mask)> batches, LoraSet? adapter)
    {
        using var noGrad = no_grad();
        foreach (var (ids, mask) in batches)
            model.Forward(ids, new ForwardOptions { AttentionMask = mask, Logits = LogitPositions.None, Lora = adapter }).Dispose();
    }

    /// <summary>Δ of <paramref name="adapter"/>, the loss ‖Δ‖², and its gradient with respect to every A and B.</summary>
    static void DifferentiablePass(DeltaEmbedder embedder, LoraSet adapter)
    {
        using var scope = NewDisposeScope();
        var inputs = adapter.Tensors().ToList();
        var delta = embedder.Compute(adapter);
        var loss = delta.pow(OwnedScalars.Two).sum();
        var gradients = autograd.grad([loss], inputs);
        if (gradients.Count != inputs.Count || gradients.Any(g => g is null))
            throw new LlgbmException("bench delta: the differentiable delta pass gave no gradient for some adapter tensor.");
    }
}
