namespace LLGBM.Lora;

/// <summary>
/// The consecutive tokens of a LoRA token grid that hold one factor of one module: the factor's <see cref="Rows"/> rows
/// (the rank rows of A [r, in] or of Bᵀ [r, out]) in order, each cut into <see cref="ChunksPerRow"/> chunks of
/// <see cref="ChunkWidth"/> features; the last chunk of a row holds <see cref="LastChunkFeatures"/> features and is
/// padded up to the chunk width. Token <c>Offset + row · ChunksPerRow + chunk</c> holds features
/// <c>[chunk · ChunkWidth, min((chunk + 1) · ChunkWidth, Features))</c> of row <c>row</c>.
/// </summary>
/// <param name="Path">The module's state-dict path.</param>
/// <param name="Factor">A or Bᵀ.</param>
/// <param name="Offset">Index of the block's first token in the grid.</param>
/// <param name="Rows">Rows of the factor (the module's rank).</param>
/// <param name="Features">Features per row (in for A, out for Bᵀ).</param>
/// <param name="ChunkWidth">Features per token.</param>
public sealed record LoraTokenBlock(string Path, LoraFactor Factor, long Offset, long Rows, long Features, int ChunkWidth)
{
    /// <summary>Tokens per row: ⌈Features / ChunkWidth⌉.</summary>
    public long ChunksPerRow => (Features + ChunkWidth - 1) / ChunkWidth;

    /// <summary>Tokens in the block: Rows · ChunksPerRow.</summary>
    public long Tokens => Rows * ChunksPerRow;

    /// <summary>Index one past the block's last token.</summary>
    public long End => Offset + Tokens;

    /// <summary>Real features in the last chunk of each row (ChunkWidth when the width divides Features).</summary>
    public long LastChunkFeatures => Features - (ChunksPerRow - 1) * ChunkWidth;

    /// <summary>Padding entries at the end of each row: ChunksPerRow · ChunkWidth − Features.</summary>
    public long Padding => ChunksPerRow * ChunkWidth - Features;
}
