using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// A frozen text encoder: turns a batch of texts into one vector each. The conditions of the generator are prompt
/// batches encoded this way (see <see cref="ConditionBuilder"/>). Encoders are frozen: <see cref="Encode"/> runs
/// without gradients and its result does not require them.
/// </summary>
public interface ISentenceEncoder : IDisposable
{
    /// <summary>A short name for people and command lines (<c>minilm</c>, <c>lm-mean</c>, <c>random</c>).</summary>
    string Name { get; }

    /// <summary>The width D of an encoding.</summary>
    int Dimension { get; }

    /// <summary>
    /// Everything that determines the encodings, as one string: the encoder's kind, the content hash of its weights
    /// (or its seed), its tokenization and pooling. Two encoders with the same identity give the same encoding of
    /// every text, so the identity is part of every cache key (<see cref="EncodingCache"/>).
    /// </summary>
    string Identity { get; }

    /// <summary>
    /// Encodes <paramref name="texts"/> into a fresh float32 CPU tensor [K, D], row i the encoding of text i, with no
    /// gradient. Row i does not depend on the other texts of the batch (up to floating-point rounding).
    /// </summary>
    Tensor Encode(IReadOnlyList<string> texts);
}
