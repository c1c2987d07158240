using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>Optional inputs of <see cref="Qwen2ForCausalLM.Forward"/>; the defaults run a plain causal pass.</summary>
public sealed record ForwardOptions
{
    /// <summary>
    /// [B, Tpast + T], 1 for real tokens and 0 for padding (left or right), covering the cached positions too.
    /// Null means every token is real.
    /// </summary>
    public Tensor? AttentionMask { get; init; }

    /// <summary>
    /// Rotary positions [B, T]. Null derives them from the attention mask: each real token's position is the number
    /// of real tokens before it, so a left-padded row gets the same positions as the same sequence alone.
    /// </summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>Where to compute logits (default: every position).</summary>
    public LogitPositions Logits { get; init; } = LogitPositions.All;

    /// <summary>Return every layer's hidden state (N + 1 tensors, the final-norm state last).</summary>
    public bool OutputHiddenStates { get; init; }

    /// <summary>A cache of past keys and values; the new ones are appended to it.</summary>
    public KvCache? Cache { get; init; }

    /// <summary>
    /// A LoRA adapter applied functionally in every linear module it names (per example when it is batched); null runs
    /// the base model. Its keys must name modules of this model.
    /// </summary>
    public Lora.LoraSet? Lora { get; init; }

    /// <summary>How attention is computed.</summary>
    public AttentionImplementation Attention { get; init; } = AttentionImplementation.Sdpa;
}
