using LLGBM.Evaluation;
using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>
/// Computes delta meanings, a text-space and architecture-agnostic variant of the delta activation: for each
/// (prompt, continuation) pair k of a <see cref="MeaningProbeSet"/>,
/// Δ_k(θ) = [log p_{B+θ}(continuation | prompt) − log p_B(continuation | prompt)] / d_k, the log-probabilities summed
/// over the continuation's tokens and d_k its length under <see cref="MeaningDeltaSpec.Normalization"/> (by default its
/// UTF-8 byte count, which does not depend on the tokenizer). Δ has one coordinate per pair, so models of different
/// width, depth and tokenizer give vectors of the same width for the same pairs. Prompt and continuation are tokenized
/// separately (no special tokens added) and concatenated, as the evaluation harness scores continuations. The base
/// log-probabilities are computed once, without gradients, when the embedder is built; <see cref="Compute"/> runs only
/// the adapted passes and is differentiable with respect to the adapter's tensors. Pairs are right-padded into batches
/// of <c>probeBatchSize</c> with an attention mask and logits are computed only at the positions that predict
/// continuation tokens, so padding does not change the result; <see cref="ComputeBatched"/> runs
/// <c>adapterBatchSize</c> adapters per forward pass. Log-probabilities are taken in float32 (float64 for a float64
/// model), and Δ has that dtype. The model is used as it is (call <c>eval()</c> first); the embedder does not own it.
/// </summary>
public sealed class MeaningDeltaEmbedder : IDeltaEmbedder
{
    readonly Qwen2ForCausalLM model;
    readonly List<Batch> batches = [];
    readonly Tensor divisors;
    readonly Tensor baseLogProbs;
    readonly ScalarType computeDtype;
    readonly int largestId;

    /// <summary>
    /// Builds the embedder and computes the base log-probabilities. <paramref name="tokenizer"/> is the base model's;
    /// <paramref name="probeBatchSize"/> pairs go through the model at once and <paramref name="adapterBatchSize"/>
    /// adapters of a batched set (default: all of both).
    /// </summary>
    /// <exception cref="LlgbmException">A pair encodes to no tokens, holds an id outside the vocabulary, or its continuation does not fit the length
    /// limit.</exception>
    public MeaningDeltaEmbedder(
        Qwen2ForCausalLM model, ITokenizer tokenizer, MeaningProbeSet probes, MeaningDeltaSpec? spec = null,
        int? probeBatchSize = null, int? adapterBatchSize = null)
    {
        this.model = model;
        Spec = (spec ?? MeaningDeltaSpec.Default).Validate();
        Probes = probes;
        var pairs = Tokenize(tokenizer, probes);
        var vocab = model.Config.VocabSize;
        for (var i = 0; i < pairs.Count; i++)
        {
            if (pairs[i].Context.Concat(pairs[i].Continuation).FirstOrDefault(t => t < 0 || t >= vocab, -1) is var bad && bad != -1)
                throw new LlgbmException($"Meaning delta embedder: probe {i} holds token id {bad}, outside the model's vocabulary [0, {vocab}).");
            if (pairs[i].Continuation.Count >= Spec.MaxLength)
                throw new LlgbmException(
                    $"Meaning delta embedder: the continuation of probe {i} has {pairs[i].Continuation.Count} tokens; " +
                    $"with the maximum length {Spec.MaxLength} at least one prompt token must fit.");
        }
        largestId = pairs.Max(p => p.Context.Concat(p.Continuation).Max());
        ProbeCount = pairs.Count;
        ProbeBatchSize = Math.Max(1, Math.Min(probeBatchSize ?? pairs.Count, pairs.Count));
        AdapterBatchSize = Math.Max(1, adapterBatchSize ?? int.MaxValue);
        computeDtype = model.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var device = model.Device;
        using var scope = NewDisposeScope();
        for (var start = 0; start < pairs.Count; start += ProbeBatchSize)
            batches.Add(Batch.Of([.. pairs.Skip(start).Take(ProbeBatchSize)], Spec.MaxLength, computeDtype, device));
        var d = probes.Probes.Select((p, i) => Spec.Divisor(p.Continuation, pairs[i].Continuation.Count)).ToArray();
        divisors = tensor(d, dtype: ScalarType.Float64).to(computeDtype).to(device).DetachFromDisposeScope();
        using (no_grad())
            baseLogProbs = LogProbabilities(model, null, 1).squeeze(0).DetachFromDisposeScope();
    }

    /// <summary>The spec this embedder computes.</summary>
    public MeaningDeltaSpec Spec { get; }

    /// <summary>The pairs, in coordinate order.</summary>
    public MeaningProbeSet Probes { get; }

    /// <inheritdoc/>
    public DeltaKind Kind => DeltaKind.Meaning;

    /// <summary>The width of Δ: one coordinate per pair.</summary>
    public long Dim => ProbeCount;

    /// <summary>The number of (prompt, continuation) pairs.</summary>
    public int ProbeCount { get; }

    /// <summary>Pairs per forward pass.</summary>
    public int ProbeBatchSize { get; }

    /// <summary>The number of pair batches (forward passes per adapter).</summary>
    public int ProbeBatchCount => batches.Count;

    /// <summary>Adapters of a batched set per forward pass in <see cref="ComputeBatched"/>.</summary>
    public int AdapterBatchSize { get; }

    /// <inheritdoc/>
    public int ForwardCalls { get; private set; }

    /// <summary>The cached base log-probability of each pair's continuation, normalised, [Dim].</summary>
    public Tensor BaseLogProbabilities => baseLogProbs;

    /// <summary>
    /// Each pair's prompt and continuation as token ids (encoded separately with <paramref name="tokenizer"/>, no special
    /// tokens added), in pair order.
    /// </summary>
    /// <exception cref="LlgbmException">A prompt or continuation encodes to no tokens.</exception>
    public static IReadOnlyList<ContinuationRequest> Tokenize(ITokenizer tokenizer, MeaningProbeSet probes)
    {
        var result = new List<ContinuationRequest>(probes.Count);
        for (var i = 0; i < probes.Count; i++)
        {
            var (prompt, continuation) = (tokenizer.Encode(probes.Probes[i].Prompt), tokenizer.Encode(probes.Probes[i].Continuation));
            if (prompt.Count == 0 || continuation.Count == 0)
                throw new LlgbmException(
                    $"Meaning probe set '{probes.Name}': probe {i} encodes to {prompt.Count} prompt and {continuation.Count} continuation tokens; " +
                    $"both need at least one.");
            result.Add(new ContinuationRequest(prompt, continuation));
        }
        return result;
    }

    /// <inheritdoc/>
    public Tensor Compute(LoraSet adapter)
    {
        if (adapter.IsBatched)
            throw new LlgbmException("Meaning delta embedder: Compute takes one adapter; use ComputeBatched for a batched LoRA set.");
        using var scope = NewDisposeScope();
        return (LogProbabilities(model, adapter, 1).squeeze(0) - baseLogProbs).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Δ of each of the N per-example adapters of <paramref name="batchedAdapter"/>, [N, Dim]; differentiable. Adapters
    /// go through the model <see cref="AdapterBatchSize"/> at a time; each forward pass runs every pair of a pair batch
    /// under every adapter of the group (adapter n on rows n·b … n·b + b − 1). Modules of the set that are not batched
    /// apply to every adapter.
    /// </summary>
    public Tensor ComputeBatched(LoraSet batchedAdapter)
    {
        using var scope = NewDisposeScope();
        if (!batchedAdapter.IsBatched)
            return (LogProbabilities(model, batchedAdapter, 1) - baseLogProbs.unsqueeze(0)).MoveToOuterDisposeScope();
        var n = batchedAdapter.Count;
        var groups = new List<Tensor>();
        for (long start = 0; start < n; start += AdapterBatchSize)
        {
            var count = Math.Min(AdapterBatchSize, n - start);
            var group = count == n ? batchedAdapter : BatchedLoraSets.Narrow(batchedAdapter, start, count);
            groups.Add(LogProbabilities(model, group, count) - baseLogProbs.unsqueeze(0));
        }
        return (groups.Count == 1 ? groups[0] : cat(groups, 0)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public Tensor ComputeNoGrad(LoraSet adapter)
    {
        using var _ = no_grad();
        return Compute(adapter);
    }

    /// <summary>
    /// Δ of a fully fine-tuned model (Mode B): its normalised log-probability of each continuation minus the cached base
    /// one, over the same token ids (so the fine-tuned model must read the base's tokenizer); a detached [Dim] tensor. Its
    /// width and depth may differ from the base's. The base model itself gives exactly zero.
    /// </summary>
    /// <exception cref="LlgbmException">The model's vocabulary does not hold every token id of the pairs.</exception>
    public Tensor ComputeModel(Qwen2ForCausalLM finetuned)
    {
        if (largestId >= finetuned.Config.VocabSize)
            throw new LlgbmException(
                $"Meaning delta embedder: the pairs hold token id {largestId}, outside the fine-tuned model's vocabulary [0, {finetuned.Config.VocabSize}).");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return (LogProbabilities(finetuned, null, 1).squeeze(0).to(model.Device) - baseLogProbs).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The normalised log-probability of each pair's continuation under <paramref name="target"/> with each of
    /// <paramref name="n"/> adapters (n = 1 for none or a single adapter), [n, Dim], on the base model's device.
    /// </summary>
    Tensor LogProbabilities(Qwen2ForCausalLM target, LoraSet? adapter, long n)
    {
        using var scope = NewDisposeScope();
        var device = target.Device;
        var parts = new List<Tensor>();
        foreach (var batch in batches)
        {
            var rows = batch.Ids.shape[0];
            var (ids, mask, index, targets, valid) = (
                batch.Ids.to(device), batch.Mask.to(device), batch.Index.to(device), batch.Targets.to(device), batch.Valid.to(device));
            var lora = adapter;
            if (adapter is not null && adapter.IsBatched)
            {
                (ids, mask, index, targets, valid) = (ids.repeat(n, 1), mask.repeat(n, 1), index.repeat(n, 1), targets.repeat(n, 1), valid.repeat(n, 1));
                lora = BatchedLoraSets.RepeatEach(adapter, rows);
            }
            ForwardCalls++;
            using var output = target.Forward(ids, new ForwardOptions { AttentionMask = mask, Logits = LogitPositions.At(index), Lora = lora });
            var logProbs = output.Logits!.to_type(computeDtype).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
            parts.Add((logProbs * valid).sum(-1).view(n, rows));
        }
        var sums = parts.Count == 1 ? parts[0] : cat(parts, 1);
        return (sums.to(model.Device) / divisors.unsqueeze(0)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var batch in batches)
            batch.Dispose();
        divisors.Dispose();
        baseLogProbs.Dispose();
    }

    /// <summary>
    /// One right-padded batch of pairs: ids and mask [b, L]; for each continuation token j, the position whose logits
    /// predict it (index), the token (targets) and 1 (valid), padded to the longest continuation W with 0, [b, W].
    /// </summary>
    sealed record Batch(Tensor Ids, Tensor Mask, Tensor Index, Tensor Targets, Tensor Valid) : IDisposable
    {
        /// <summary>The batch of <paramref name="pairs"/>, its tensors detached from every dispose scope.</summary>
        public static Batch Of(IReadOnlyList<ContinuationRequest> pairs, int maxLength, ScalarType dtype, Device device)
        {
            using var scope = NewDisposeScope();
            var rows = pairs.Count;
            var truncated = pairs.Select(p => p.Context.Skip(Math.Max(0, p.Context.Count + p.Continuation.Count - maxLength)).ToArray()).ToArray();
            var length = pairs.Select((p, r) => truncated[r].Length + p.Continuation.Count).Max();
            var width = pairs.Max(p => p.Continuation.Count);
            var (ids, mask) = (new long[rows * length], new long[rows * length]);
            var (index, targets, valid) = (new long[rows * width], new long[rows * width], new double[rows * width]);
            for (var r = 0; r < rows; r++)
            {
                var (context, continuation) = (truncated[r], pairs[r].Continuation);
                for (var t = 0; t < context.Length + continuation.Count; t++)
                {
                    ids[r * length + t] = t < context.Length ? context[t] : continuation[t - context.Length];
                    mask[r * length + t] = 1;
                }
                for (var j = 0; j < continuation.Count; j++)
                {
                    // The logits at position p predict the token at p + 1; unused slots stay at position 0 and are masked.
                    index[r * width + j] = context.Length + j - 1;
                    targets[r * width + j] = continuation[j];
                    valid[r * width + j] = 1;
                }
            }
            return new Batch(
                tensor(ids, [rows, length], device: device).DetachFromDisposeScope(),
                tensor(mask, [rows, length], device: device).DetachFromDisposeScope(),
                tensor(index, [rows, width], device: device).DetachFromDisposeScope(),
                tensor(targets, [rows, width], device: device).DetachFromDisposeScope(),
                tensor(valid, [rows, width], dtype: ScalarType.Float64).to(dtype).to(device).DetachFromDisposeScope());
        }

        /// <inheritdoc/>
        public void Dispose()
        {
            Ids.Dispose();
            Mask.Dispose();
            Index.Dispose();
            Targets.Dispose();
            Valid.Dispose();
        }
    }
}
