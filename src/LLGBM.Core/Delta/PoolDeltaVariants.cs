using System.Diagnostics;
using LLGBM.Checkpoints;
using LLGBM.Lora;
using LLGBM.Teachers;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>One kept adapter of a teacher pool, as the manifest lists it.</summary>
/// <param name="Checkpoint">The manifest's record.</param>
/// <param name="Final">Whether it is its task's last kept adapter.</param>
public sealed record PoolAdapter(TeacherCheckpoint Checkpoint, bool Final);

/// <summary>The deltas of every adapter of a pool under one <see cref="ProbeDesignVariant"/>, with their cost.</summary>
/// <param name="Variant">The design.</param>
/// <param name="ProbeTokens">Tokens over all probes (after truncation to the spec's maximum length).</param>
/// <param name="Dim">The width of the deltas.</param>
/// <param name="BaseSeconds">Wall time of building the embedder (tokenizing and the base pass).</param>
/// <param name="DeltaSeconds">
/// Wall time of each adapter's delta (no gradients; adapters already loaded; after one untimed pass), in the order of
/// the pool's adapters.
/// </param>
/// <param name="Deltas">One delta per adapter, in the order of the pool's adapters.</param>
public sealed record VariantDeltas(
    ProbeDesignVariant Variant, int ProbeTokens, long Dim, double BaseSeconds, IReadOnlyList<double> DeltaSeconds, IReadOnlyList<float[]> Deltas);

/// <summary>
/// The delta activations of every kept adapter of a teacher pool under several designs (the probe-design study): the
/// adapters are loaded once, then each variant builds its own embedder (its base pass timed) and embeds every adapter
/// (timed). Nothing is read from or written to a delta cache, so deltas of different probes or specs never meet.
/// </summary>
public static class PoolDeltaVariants
{
    /// <summary>
    /// The pool's kept adapters in task then step order (the last <paramref name="lastCheckpoints"/> of each task, or
    /// all when null), and each variant's deltas of them.
    /// </summary>
    /// <exception cref="LlgbmException">The base or the pool is missing or malformed, or a variant does not fit the model.</exception>
    public static (IReadOnlyList<PoolAdapter> Adapters, IReadOnlyList<VariantDeltas> Variants) Compute(
        string baseDir, string poolDir, IReadOnlyList<ProbeDesignVariant> variants, int? lastCheckpoints = null, Device? device = null,
        Action<string>? log = null)
    {
        if (lastCheckpoints is < 1)
            throw new LlgbmException($"Probe design: at least the last checkpoint of each task is needed (found {lastCheckpoints}).");
        if (!Directory.Exists(baseDir))
            throw new LlgbmException($"{baseDir}: no such base checkpoint directory.");
        if (variants.Count == 0)
            throw new LlgbmException("Probe design: no variants given.");
        var checkpoints = TeacherPool.ReadManifest(poolDir)
            .SelectMany(m => m.Checkpoints)
            .OrderBy(c => c.Task, StringComparer.Ordinal)
            .ThenBy(c => c.Step)
            .ThenBy(c => c.Adapter, StringComparer.Ordinal)
            .GroupBy(c => c.Task)
            .SelectMany(g => g.Skip(lastCheckpoints is { } last ? Math.Max(0, g.Count() - last) : 0))
            .ToList();
        if (checkpoints.Count == 0)
            throw new LlgbmException($"{poolDir}: the pool's manifest lists no adapters.");
        var finalStep = checkpoints.GroupBy(c => c.Task).ToDictionary(g => g.Key, g => g.Max(c => c.Step));
        var adapters = checkpoints.Select(c => new PoolAdapter(c, c.Step == finalStep[c.Task])).ToList();

        var tokenizer = Tokenizers.Load(baseDir);
        using var model = Qwen2Checkpoint.Load(baseDir, device);
        model.eval();
        var loras = new List<LoraSet>();
        try
        {
            foreach (var c in checkpoints)
                loras.Add(PeftAdapter.Load(Path.Combine(poolDir, c.Adapter), model.Config, device).Adapter);
            log?.Invoke($"{loras.Count} adapters of {finalStep.Count} tasks loaded");
            var results = new List<VariantDeltas>();
            foreach (var variant in variants)
            {
                var clock = Stopwatch.StartNew();
                var probes = variant.Probes.Tokenize(variant.Probes.Texts is null ? null : tokenizer);
                using var embedder = new DeltaEmbedder(model, probes, variant.Spec);
                var baseSeconds = clock.Elapsed.TotalSeconds;
                using (embedder.ComputeNoGrad(loras[0]))
                {
                    // One untimed pass, so that no variant's time holds the first pass's warm-up.
                }
                var deltas = new List<float[]>(loras.Count);
                var seconds = new List<double>(loras.Count);
                foreach (var lora in loras)
                {
                    clock.Restart();
                    using var delta = embedder.ComputeNoGrad(lora);
                    deltas.Add(delta.to(ScalarType.Float32).cpu().data<float>().ToArray());
                    seconds.Add(clock.Elapsed.TotalSeconds);
                }
                var tokens = probes.Sum(p => Math.Min(p.Count, variant.Spec.MaxProbeLength));
                results.Add(new VariantDeltas(variant, tokens, embedder.Dim, baseSeconds, seconds, deltas));
                log?.Invoke(
                    $"{results.Count}/{variants.Count} {variant.Name}: {variant.Probes.Count} probes ({tokens} tokens), dim {embedder.Dim}, " +
                    $"{seconds.Order().ElementAt(seconds.Count / 2) * 1000:F1} ms per adapter (median)");
            }
            return (adapters, results);
        }
        finally
        {
            foreach (var lora in loras)
                lora.Dispose();
        }
    }
}
