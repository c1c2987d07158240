namespace LLGBM.Delta;

/// <summary>What a delta measures.</summary>
public enum DeltaKind
{
    /// <summary>
    /// The delta activation (<see cref="DeltaEmbedder"/>): the shift in a hidden state of the base model on probe
    /// inputs; its width is the model's (H, or layers × H), so it compares adapters of one backbone.
    /// </summary>
    Activation,

    /// <summary>
    /// The delta meaning (<see cref="MeaningDeltaEmbedder"/>): the shift in the log-probability of fixed continuations of
    /// fixed prompts, one coordinate per (prompt, continuation) pair of text; comparable across backbones of different
    /// width, depth and tokenizer.
    /// </summary>
    Meaning,
}
