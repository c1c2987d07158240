using System.Globalization;
using LLGBM.Evaluation;

namespace LLGBM.Delta;

/// <summary>What a delta meaning measures besides its probes: how the log-probabilities are normalised, and the length limit.</summary>
public sealed record MeaningDeltaSpec
{
    /// <summary>
    /// What each pair's summed log-probability is divided by (default: the UTF-8 byte count of the continuation text,
    /// which does not depend on the tokenizer; <see cref="LengthNormalization.Tokens"/> does).
    /// </summary>
    public LengthNormalization Normalization { get; init; } = LengthNormalization.Bytes;

    /// <summary>
    /// Longest prompt plus continuation in tokens; longer pairs keep the last prompt tokens (truncation from the left).
    /// A continuation must leave room for at least one prompt token.
    /// </summary>
    public int MaxLength { get; init; } = 256;

    /// <summary>The default: byte normalisation, 256 tokens.</summary>
    public static MeaningDeltaSpec Default { get; } = new();

    /// <summary>Checks the values; returns this.</summary>
    public MeaningDeltaSpec Validate()
    {
        if (MaxLength < 2)
            throw new LlgbmException(
                $"Meaning delta spec: the maximum length must be at least 2 tokens, one of prompt and one of continuation (found {MaxLength}).");
        if (!Enum.IsDefined(Normalization))
            throw new LlgbmException($"Meaning delta spec: unknown normalisation {Normalization}.");
        return this;
    }

    /// <summary>
    /// A string naming every setting, for cache keys: e.g. <c>kind=meaning;norm=bytes;maxlen=256</c>. It starts with
    /// the kind, so it never equals a <see cref="DeltaSpec.Key"/>.
    /// </summary>
    public string Key() =>
        $"kind=meaning;norm={Normalization.ToString().ToLowerInvariant()};maxlen={MaxLength.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The divisor of a continuation's summed log-probability under <see cref="Normalization"/>.</summary>
    /// <param name="continuation">The continuation text.</param>
    /// <param name="tokenCount">The number of its tokens.</param>
    public double Divisor(string continuation, int tokenCount) => Normalization switch
    {
        LengthNormalization.None => 1,
        LengthNormalization.Tokens => tokenCount,
        LengthNormalization.Characters => continuation.Length,
        _ => System.Text.Encoding.UTF8.GetByteCount(continuation),
    };
}
