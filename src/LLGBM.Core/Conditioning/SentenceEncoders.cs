using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>The encoders by name: the pretrained default and the two alternatives behind the same interface.</summary>
public static class SentenceEncoders
{
    /// <summary>The default encoder: the pretrained all-MiniLM-L6-v2.</summary>
    public const string Default = MiniLmEncoder.EncoderName;

    /// <summary>Every encoder name: <c>minilm</c> (pretrained, the default), <c>lm-mean</c> (the base model), <c>random</c> (ablation only).</summary>
    public static readonly IReadOnlyList<string> Names = [MiniLmEncoder.EncoderName, LanguageModelEncoder.EncoderName, RandomEmbeddingEncoder.EncoderName];

    /// <summary>
    /// The encoder <paramref name="name"/> (as <see cref="Create"/>) behind the encoding cache in
    /// <paramref name="cacheDir"/>: how the runs open their condition encoders.
    /// </summary>
    public static ISentenceEncoder OpenCached(string name, string baseDir, long seed, string cacheDir, Device? device) =>
        new CachedSentenceEncoder(Create(name, baseDir, seed, device), new EncodingCache(cacheDir));

    /// <summary>Creates the encoder called <paramref name="name"/>.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="modelDir">The base checkpoint (with its tokenizer) for <c>lm-mean</c>.</param>
    /// <param name="seed">The seed of <c>random</c>.</param>
    /// <param name="device">Where <c>lm-mean</c> runs (default: the CPU).</param>
    /// <param name="dtype">The compute dtype of <c>lm-mean</c>.</param>
    /// <exception cref="LlgbmException">The name is unknown, or <c>lm-mean</c> has no checkpoint.</exception>
    public static ISentenceEncoder Create(
        string name, string? modelDir = null, long seed = 0, Device? device = null, ScalarType dtype = ScalarType.Float32) => name switch
        {
            MiniLmEncoder.EncoderName => new MiniLmEncoder(),
            LanguageModelEncoder.EncoderName => LanguageModelEncoder.FromCheckpoint(
                modelDir ?? throw new LlgbmException($"Encoder {name}: give the base checkpoint whose hidden states encode the texts (--model DIR)."),
                device, dtype),
            RandomEmbeddingEncoder.EncoderName => new RandomEmbeddingEncoder(seed),
            _ => throw new LlgbmException($"Unknown encoder '{name}': expected one of {string.Join(", ", Names)}."),
        };
}
