namespace LLGBM.Model;

/// <summary>Settings of <see cref="TextGeneration"/>'s <c>Generate</c>.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens generated per sequence.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Tokens that end a sequence; the stop token itself is not returned.</summary>
    public IReadOnlyCollection<int> StopTokens { get; init; } = [];

    /// <summary>0 for greedy decoding; otherwise logits are divided by it before sampling.</summary>
    public double Temperature { get; init; }

    /// <summary>When sampling, keep only the K most likely tokens (0 keeps all).</summary>
    public int TopK { get; init; }

    /// <summary>When sampling, keep the smallest set of tokens whose probability reaches P (1 keeps all).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Seed of the sampler (sampling is deterministic for a given seed and device).</summary>
    public long Seed { get; init; }

    /// <summary>Token placed in padding positions (they are masked out, so any valid id works).</summary>
    public int PadTokenId { get; init; }

    /// <summary>How attention is computed.</summary>
    public AttentionImplementation Attention { get; init; } = AttentionImplementation.Sdpa;
}
