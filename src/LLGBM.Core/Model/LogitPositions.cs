using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>
/// Which positions of a forward pass get logits. Computing the vocabulary projection only where it is needed
/// (the last token, the answer tokens) saves most of the head's cost on large vocabularies.
/// </summary>
public abstract record LogitPositions
{
    LogitPositions() { }

    /// <summary>Logits at every position: [B, T, V].</summary>
    public static LogitPositions All { get; } = new AllPositions();

    /// <summary>Logits at the last real (unpadded) token of each row: [B, 1, V].</summary>
    public static LogitPositions Last { get; } = new LastPosition();

    /// <summary>No logits (hidden states only).</summary>
    public static LogitPositions None { get; } = new NoPositions();

    /// <summary>Logits at the given positions of each row: <paramref name="index"/> is [B, K] (int64), result [B, K, V].</summary>
    public static LogitPositions At(Tensor index) => new Indexed(index);

    /// <summary>Every position.</summary>
    public sealed record AllPositions : LogitPositions;

    /// <summary>The last real token of each row.</summary>
    public sealed record LastPosition : LogitPositions;

    /// <summary>No position.</summary>
    public sealed record NoPositions : LogitPositions;

    /// <summary>Explicit positions [B, K].</summary>
    public sealed record Indexed(Tensor Index) : LogitPositions;
}
