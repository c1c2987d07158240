using LLGBM.Checkpoints;
using LLGBM.Lora;
using LLGBM.Tasks;
using LLGBM.Teachers;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>One kept teacher adapter with its embeddings under each representation <see cref="TeacherEmbeddings"/> computes.</summary>
/// <param name="Checkpoint">The adapter as the pool's manifest lists it.</param>
/// <param name="Final">Whether it is its task's last kept adapter.</param>
/// <param name="Delta">Its delta activation (see <see cref="DeltaEmbedder"/>).</param>
/// <param name="LoraWeights">
/// Its raw LoRA weights flattened: for every module in ordinal order of its path, A [r, in] then B [out, r], row-major.
/// </param>
/// <param name="DeltaWeight">
/// ΔW = scale · B · A of every module, flattened in the same module order: unlike <paramref name="LoraWeights"/> it does
/// not change under the gauge A → G A, B → B G⁻¹.
/// </param>
/// <param name="Prompts">
/// The base model's final-norm hidden state, mean-pooled over the real tokens of each prompt and averaged over a fixed
/// sample of the task's training prompts (see <see cref="TeacherEmbeddingSettings.PromptCount"/>).
/// </param>
/// <param name="DeltaFromCache">Whether <paramref name="Delta"/> was read from the delta cache.</param>
public sealed record TeacherEmbedding(
    TeacherCheckpoint Checkpoint, bool Final, float[] Delta, float[] LoraWeights, float[] DeltaWeight, float[] Prompts, bool DeltaFromCache);

/// <summary>Settings of <see cref="TeacherEmbeddings.Compute"/>.</summary>
public sealed record TeacherEmbeddingSettings
{
    /// <summary>The probes of the delta activations (default: the 5 generic probes).</summary>
    public ProbeSet Probes { get; init; } = ProbeSet.Generic();

    /// <summary>What the delta activations measure (default: <see cref="DeltaSpec.Default"/>).</summary>
    public DeltaSpec Spec { get; init; } = DeltaSpec.Default;

    /// <summary>
    /// A delta cache directory (see <see cref="DeltaCache"/>) to read deltas from, or null; it is only read: deltas
    /// missing from it are computed and kept in memory.
    /// </summary>
    public string? CacheDir { get; init; }

    /// <summary>
    /// Training prompts per prompt embedding (at most the task's training examples). The adapter at position j of its
    /// task's kept adapters gets the sample <c>PromptBatches.Sample(task, K, PromptBatches.BatchSeed(PromptSeed, j))</c>,
    /// so the checkpoints of a task are embedded from different prompts, as Drag-and-Drop pairs prompt batches with
    /// checkpoints.
    /// </summary>
    public int PromptCount { get; init; } = 32;

    /// <summary>The seed of the prompt samples.</summary>
    public long PromptSeed { get; init; }

    /// <summary>Where the model runs (default: the CPU).</summary>
    public Device? Device { get; init; }

    /// <summary>The compute dtype (embeddings are returned as float32).</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;
}

/// <summary>
/// Embeds every kept adapter of a teacher pool in four ways, for the Delta Activations evaluation (clustering by domain
/// and additivity over mixtures): its delta activation (read from a delta cache when present there under the same
/// base, probes, spec and adapter content, otherwise computed), its flattened LoRA weights A and B (what Delta
/// Activations compares against), its flattened ΔW = B·A, and the base model's mean-pooled hidden state over a sample
/// of its task's training prompts (the information a prompt-conditioned generator has).
/// </summary>
public static class TeacherEmbeddings
{
    /// <summary>
    /// The embeddings of every adapter listed in <paramref name="poolDir"/>'s <c>manifest.json</c>, in task then step
    /// order. Every teacher's task must be among <paramref name="tasks"/> (for its prompts); <paramref name="log"/> gets
    /// one progress line per adapter.
    /// </summary>
    /// <exception cref="LlgbmException">A teacher's task is missing from <paramref name="tasks"/>, or an input is malformed.</exception>
    public static IReadOnlyList<TeacherEmbedding> Compute(
        string baseDir, string poolDir, IReadOnlyList<TaskData> tasks, TeacherEmbeddingSettings settings, Action<string>? log = null)
    {
        if (settings.PromptCount < 1)
            throw new LlgbmException($"Teacher embeddings: the prompt sample needs at least one prompt (found {settings.PromptCount}).");
        settings.Spec.Validate();
        if (!Directory.Exists(baseDir))
            throw new LlgbmException($"{baseDir}: no such base checkpoint directory.");
        var byName = tasks.ToDictionary(t => t.Spec.Name, StringComparer.Ordinal);
        var checkpoints = TeacherPool.ReadManifest(poolDir)
            .SelectMany(m => m.Checkpoints)
            .OrderBy(c => c.Task, StringComparer.Ordinal)
            .ThenBy(c => c.Step)
            .ThenBy(c => c.Adapter, StringComparer.Ordinal)
            .ToList();
        var missing = checkpoints.Select(c => c.Task).Distinct().Where(t => !byName.ContainsKey(t)).ToList();
        if (missing.Count > 0)
            throw new LlgbmException($"{poolDir}: teachers of tasks not found among the tasks given: {string.Join(", ", missing)}.");

        var tokenizer = Tokenizers.Load(baseDir);
        var probeTokens = settings.Probes.Tokenize(settings.Probes.Texts is null ? null : tokenizer);
        var (baseHash, probesHash, specHash) = (
            ContentHash.OfCheckpoint(baseDir),
            DeltaCache.ProbesHash(probeTokens, settings.Probes.Texts),
            ContentHash.OfText(settings.Spec.Key()));
        var finalStep = checkpoints.GroupBy(c => c.Task).ToDictionary(g => g.Key, g => g.Max(c => c.Step));
        var promptSpec = new DeltaSpec { Pooling = DeltaPooling.MeanOverRealTokens };

        using var model = Qwen2Checkpoint.Load(baseDir, settings.Device, settings.Dtype);
        model.eval();
        using var embedder = new DeltaEmbedder(model, probeTokens, settings.Spec);
        var result = new List<TeacherEmbedding>();
        var position = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var checkpoint in checkpoints)
        {
            var adapterDir = Path.Combine(poolDir, checkpoint.Adapter);
            using var lora = PeftAdapter.Load(adapterDir, model.Config, settings.Device, settings.Dtype).Adapter;
            float[] delta;
            var cached = settings.CacheDir is { } cache
                ? DeltaCache.EntryPath(cache, DeltaCache.EntryKey(baseHash, probesHash, specHash, DeltaCache.AdapterHash(adapterDir)))
                : null;
            var fromCache = cached is not null && File.Exists(cached);
            if (fromCache)
            {
                using var reader = SafetensorsReader.Open(cached!);
                using var t = reader.Read(DeltaCache.TensorName);
                delta = Values(t);
            }
            else
            {
                using var t = embedder.ComputeNoGrad(lora);
                FiniteCheck.Tensor(t, $"Teacher embeddings: the delta of {adapterDir}");
                delta = Values(t);
            }

            var task = byName[checkpoint.Task];
            var j = position.GetValueOrDefault(checkpoint.Task);
            position[checkpoint.Task] = j + 1;
            var k = Math.Min(settings.PromptCount, task.Train.Count);
            var sample = PromptBatches.Sample(task, k, PromptBatches.BatchSeed(settings.PromptSeed, j));
            var promptTokens = sample.Prompts.Select(tokenizer.Encode).ToList();
            float[] prompts;
            using (var promptEmbedder = new DeltaEmbedder(model, promptTokens, promptSpec))
                prompts = Values(promptEmbedder.BaseRepresentation);

            result.Add(new TeacherEmbedding(
                checkpoint, checkpoint.Step == finalStep[checkpoint.Task], delta, Flatten(lora, adapterDir, lowRank: true),
                Flatten(lora, adapterDir, lowRank: false), prompts, fromCache));
            log?.Invoke($"{result.Count}/{checkpoints.Count} {checkpoint.Adapter}{(fromCache ? " (delta cached)" : "")}");
        }
        return result;
    }

    /// <summary>
    /// The modules of <paramref name="lora"/> flattened in ordinal order of their paths: A then B of each
    /// (<paramref name="lowRank"/>), or ΔW = scale · B · A of each.
    /// </summary>
    public static float[] Flatten(LoraSet lora, string source, bool lowRank)
    {
        if (lora.IsBatched)
            throw new LlgbmException($"{source}: a batched LoRA set holds several adapters; flatten one at a time.");
        var parts = new List<float[]>();
        foreach (var path in lora.Modules.Keys.Order(StringComparer.Ordinal))
        {
            var m = lora.Modules[path];
            if (lowRank)
            {
                if (m.A is null || m.B is null)
                    throw new LlgbmException($"{source}: module {path} is a dense ΔW; its LoRA factors A and B cannot be flattened.");
                parts.Add(Values(m.A));
                parts.Add(Values(m.B));
            }
            else
            {
                using var _ = no_grad();
                using var w = m.DeltaWeight();
                parts.Add(Values(w));
            }
        }
        var flat = new float[parts.Sum(p => p.Length)];
        var offset = 0;
        foreach (var p in parts)
        {
            p.CopyTo(flat, offset);
            offset += p.Length;
        }
        return flat;
    }

    static float[] Values(Tensor t)
    {
        using var scope = NewDisposeScope();
        var cpu = t.detach().to(ScalarType.Float32).cpu().contiguous();
        return cpu.data<float>().ToArray();
    }
}
