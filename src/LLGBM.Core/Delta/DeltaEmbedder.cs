using LLGBM.Lora;
using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>
/// Computes delta activations Δ(θ) = mean over probes of [r(B + θ, p) − r(B, p)], where r is the representation
/// <see cref="DeltaSpec"/> describes (by default the final-norm hidden state of the probe's last real token). The base
/// representation is computed once, without gradients, when the embedder is built; <see cref="Compute"/> runs only the
/// adapted passes and is differentiable with respect to the adapter's tensors. Probes are truncated from the left to
/// <see cref="DeltaSpec.MaxProbeLength"/>, right-padded into batches of <c>probeBatchSize</c> with an attention mask,
/// and pooled over real tokens only, so padding does not change the result. The model is used as it is (call
/// <c>eval()</c> first so that no dropout applies); the embedder does not own it.
/// </summary>
public sealed class DeltaEmbedder : IDeltaEmbedder
{
    readonly Qwen2ForCausalLM model;
    readonly List<(Tensor Ids, Tensor Mask)> batches = [];
    readonly Tensor baseMean;
    readonly Tensor? projection;

    /// <summary>
    /// Builds the embedder and computes the base representation. <paramref name="probes"/> are token-id lists (see
    /// <see cref="ProbeSet.Tokenize"/>); <paramref name="probeBatchSize"/> probes go through the model at once (default:
    /// all of them).
    /// </summary>
    public DeltaEmbedder(Qwen2ForCausalLM model, IReadOnlyList<IReadOnlyList<int>> probes, DeltaSpec? spec = null, int? probeBatchSize = null)
    {
        this.model = model;
        Spec = (spec ?? DeltaSpec.Default).Validate();
        if (probes.Count == 0)
            throw new LlgbmException("Delta embedder: no probes given.");
        var vocab = model.Config.VocabSize;
        for (var i = 0; i < probes.Count; i++)
        {
            if (probes[i].Count == 0)
                throw new LlgbmException($"Delta embedder: probe {i} has no tokens.");
            foreach (var t in probes[i])
                if (t < 0 || t >= vocab)
                    throw new LlgbmException($"Delta embedder: probe {i} holds token id {t}, outside the vocabulary [0, {vocab}).");
        }
        var layerCount = model.Config.NumHiddenLayers + 1;
        if (Spec.Layers is { } layers)
            foreach (var l in layers)
                if (l < -layerCount || l >= layerCount)
                    throw new LlgbmException(
                        $"Delta spec: hidden-state index {l} is outside [-{layerCount}, {layerCount}) for a model of {model.Config.NumHiddenLayers} layers.");
        ProbeCount = probes.Count;
        ProbeBatchSize = Math.Max(1, Math.Min(probeBatchSize ?? probes.Count, probes.Count));
        var device = model.Device;
        for (var start = 0; start < probes.Count; start += ProbeBatchSize)
        {
            var chunk = probes.Skip(start).Take(ProbeBatchSize).Select(p => p.Skip(Math.Max(0, p.Count - Spec.MaxProbeLength)).ToArray()).ToList();
            var length = chunk.Max(p => p.Length);
            var ids = new long[chunk.Count * length];
            var mask = new long[chunk.Count * length];
            for (var r = 0; r < chunk.Count; r++)
                for (var t = 0; t < chunk[r].Length; t++)
                {
                    ids[r * length + t] = chunk[r][t];
                    mask[r * length + t] = 1;
                }
            batches.Add((tensor(ids, [chunk.Count, length], device: device), tensor(mask, [chunk.Count, length], device: device)));
        }
        var hidden = model.Config.HiddenSize;
        RepresentationDim = Spec.Layers is { } ls && Spec.Combination == LayerCombination.Concatenate ? ls.Count * hidden : hidden;
        using (no_grad())
            baseMean = MeanRepresentation(model, null, 1).squeeze(0).DetachFromDisposeScope();
        if (Spec.ProjectionDim is { } dim)
        {
            using var generator = new Generator((ulong)Spec.ProjectionSeed);
            using var r = randn([RepresentationDim, dim], dtype: ScalarType.Float64, generator: generator);
            using var root = Math.Sqrt(dim).ToScalar();
            projection = (r / root).to(model.Dtype).to(device).DetachFromDisposeScope();
        }
    }

    /// <summary>The spec this embedder computes.</summary>
    public DeltaSpec Spec { get; }

    /// <inheritdoc/>
    public DeltaKind Kind => DeltaKind.Activation;

    /// <summary>The number of probes.</summary>
    public int ProbeCount { get; }

    /// <summary>Probes per forward pass.</summary>
    public int ProbeBatchSize { get; }

    /// <summary>The number of probe batches (forward passes per adapter).</summary>
    public int ProbeBatchCount => batches.Count;

    /// <summary>Width of the representation before projection (H, or layers × H when concatenating).</summary>
    public long RepresentationDim { get; }

    /// <summary>Width of Δ: the projection dimension when there is one, else <see cref="RepresentationDim"/>.</summary>
    public long Dim => Spec.ProjectionDim ?? RepresentationDim;

    /// <summary>Forward passes run so far, the base passes of the constructor included.</summary>
    public int ForwardCalls { get; private set; }

    /// <summary>The cached base representation, averaged over probes, [RepresentationDim] (before projection).</summary>
    public Tensor BaseRepresentation => baseMean;

    /// <summary>Δ of <paramref name="adapter"/> (not batched), [Dim]; differentiable with respect to its tensors.</summary>
    public Tensor Compute(LoraSet adapter)
    {
        if (adapter.IsBatched)
            throw new LlgbmException("Delta embedder: Compute takes one adapter; use ComputeBatched for a batched LoRA set.");
        using var scope = NewDisposeScope();
        var delta = MeanRepresentation(model, adapter, 1).squeeze(0) - baseMean;
        return Project(delta).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Δ of each of the N per-example adapters of <paramref name="batchedAdapter"/>, [N, Dim]; differentiable. The probe
    /// batch is tiled: each forward pass runs every probe of a probe batch under every adapter (N × batch rows, adapter
    /// n on rows n·b … n·b + b − 1), so it takes as many passes as <see cref="Compute"/> does for one adapter.
    /// </summary>
    public Tensor ComputeBatched(LoraSet batchedAdapter)
    {
        using var scope = NewDisposeScope();
        var n = batchedAdapter.IsBatched ? batchedAdapter.Count : 1;
        var delta = MeanRepresentation(model, batchedAdapter, n) - baseMean.unsqueeze(0);
        return Project(delta).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Compute"/> without gradients: a detached [Dim] tensor.</summary>
    public Tensor ComputeNoGrad(LoraSet adapter)
    {
        using var _ = no_grad();
        return Compute(adapter);
    }

    /// <summary>
    /// Δ of a fully fine-tuned model of the base's architecture (Mode B): the mean over probes of its representation
    /// minus the cached base representation, projected like an adapter's; a detached [Dim] tensor. The base model itself
    /// gives exactly zero.
    /// </summary>
    /// <exception cref="LlgbmException">The model's width, depth or vocabulary does not fit the base's probes and spec.</exception>
    public Tensor ComputeModel(Qwen2ForCausalLM finetuned)
    {
        var (b, f) = (model.Config, finetuned.Config);
        if (f.HiddenSize != b.HiddenSize || f.NumHiddenLayers != b.NumHiddenLayers)
            throw new LlgbmException(
                $"Delta embedder: the fine-tuned model has hidden size {f.HiddenSize} and {f.NumHiddenLayers} layers, " +
                $"the base {b.HiddenSize} and {b.NumHiddenLayers}; a delta activation compares models of one architecture.");
        if (f.VocabSize < b.VocabSize)
            throw new LlgbmException($"Delta embedder: the fine-tuned model's vocabulary ({f.VocabSize}) is smaller than the base's ({b.VocabSize}).");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var delta = MeanRepresentation(finetuned, null, 1).squeeze(0).to(model.Device) - baseMean;
        return Project(delta).MoveToOuterDisposeScope();
    }

    Tensor Project(Tensor delta) => projection is null ? delta : delta.matmul(projection);

    /// <summary>
    /// The representation of <paramref name="target"/> (the base model, or a fine-tuned one) averaged over probes for
    /// each of <paramref name="n"/> adapters, [n, RepresentationDim].
    /// </summary>
    Tensor MeanRepresentation(Qwen2ForCausalLM target, LoraSet? adapter, long n)
    {
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        foreach (var (ids, mask) in batches)
        {
            var rows = ids.shape[0];
            var (batchIds, batchMask, lora) = (ids.to(target.Device), mask.to(target.Device), adapter);
            if (adapter is not null && adapter.IsBatched)
            {
                batchIds = batchIds.repeat(n, 1);
                batchMask = batchMask.repeat(n, 1);
                lora = BatchedLoraSets.RepeatEach(adapter, rows);
            }
            ForwardCalls++;
            using var output = target.Forward(
                batchIds,
                new ForwardOptions { AttentionMask = batchMask, Logits = LogitPositions.None, Lora = lora, OutputHiddenStates = Spec.Layers is not null });
            var pooled = Represent(output, batchMask).view(n, rows, -1).sum(1);
            sum = sum is null ? pooled : sum.add(pooled, OwnedScalars.One);
        }
        using var probes = ProbeCount.ToScalar();
        return (sum! / probes).MoveToOuterDisposeScope();
    }

    Tensor Represent(Qwen2Output output, Tensor mask)
    {
        if (Spec.Layers is not { } layers)
            return Pool(output.HiddenLast, output.LastTokenIndex, mask);
        var states = output.HiddenStates!;
        var pooled = layers.Select(l => Pool(states[l < 0 ? states.Count + l : l], output.LastTokenIndex, mask)).ToList();
        return Spec.Combination == LayerCombination.Concatenate ? cat(pooled, -1) : stack(pooled, 0).mean([0]);
    }

    Tensor Pool(Tensor hidden, Tensor lastIndex, Tensor mask)
    {
        if (Spec.Pooling == DeltaPooling.LastToken)
            return hidden.gather(1, lastIndex.view(-1, 1, 1).expand(-1, 1, hidden.shape[2])).squeeze(1);
        var weights = mask.to_type(hidden.dtype).unsqueeze(-1);
        return (hidden * weights).sum(1) / weights.sum(1);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var (ids, mask) in batches)
        {
            ids.Dispose();
            mask.Dispose();
        }
        baseMean.Dispose();
        projection?.Dispose();
    }
}
