using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>
/// Maps an adapter (or a fully fine-tuned model) to a fixed-width vector describing how it changes the base model's
/// behaviour on a fixed probe set, relative to the base model the embedder was built on. Implemented by
/// <see cref="DeltaEmbedder"/> (hidden-state shift) and <see cref="MeaningDeltaEmbedder"/> (log-probability shift of
/// text continuations), so that generator training and the delta cache can use either.
/// </summary>
public interface IDeltaEmbedder : IDisposable
{
    /// <summary>What the embedder measures.</summary>
    DeltaKind Kind { get; }

    /// <summary>The width of Δ.</summary>
    long Dim { get; }

    /// <summary>The number of probes (for the meaning delta, of (prompt, continuation) pairs).</summary>
    int ProbeCount { get; }

    /// <summary>Forward passes run so far, the base passes of the constructor included.</summary>
    int ForwardCalls { get; }

    /// <summary>Δ of <paramref name="adapter"/> (not batched), [Dim]; differentiable with respect to its tensors.</summary>
    Tensor Compute(LoraSet adapter);

    /// <summary>Δ of each of the N per-example adapters of <paramref name="batchedAdapter"/>, [N, Dim]; differentiable.</summary>
    Tensor ComputeBatched(LoraSet batchedAdapter);

    /// <summary><see cref="Compute"/> without gradients: a detached [Dim] tensor.</summary>
    Tensor ComputeNoGrad(LoraSet adapter);

    /// <summary>
    /// Δ of a fully fine-tuned model compared to the base model the embedder was built on (Mode B): the same probes and
    /// settings, with <paramref name="finetuned"/> in place of the adapted base; a detached [Dim] tensor. The base model
    /// itself gives zero, and a model with an adapter merged into its weights gives the adapter's Δ up to rounding.
    /// </summary>
    Tensor ComputeModel(Qwen2ForCausalLM finetuned);
}
