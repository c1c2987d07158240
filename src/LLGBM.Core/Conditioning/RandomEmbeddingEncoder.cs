using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// The ablation baseline, never a default: a randomly initialised, untrained token-embedding table, mean-pooled and L2
/// normalised. It tokenizes exactly as <see cref="MiniLmEncoder"/> does (<see cref="BertUncasedTokenizer"/>,
/// <c>[CLS]</c> and <c>[SEP]</c> included), so comparing the two isolates what pretraining contributes: two texts come
/// out similar only in proportion to the WordPieces they share, whatever they mean. Token id t's vector is D standard
/// normal draws (Box–Muller over SplitMix64 seeded with a mix of the seed and t), so the same seed gives the same
/// encodings on every machine.
/// </summary>
public sealed class RandomEmbeddingEncoder : ISentenceEncoder
{
    /// <summary>The encoder's name on command lines.</summary>
    public const string EncoderName = "random";

    readonly ConcurrentDictionary<int, float[]> vectors = new();

    /// <summary>A random-embedding encoder of width <paramref name="dimension"/> drawn with <paramref name="seed"/>.</summary>
    /// <exception cref="LlgbmException"><paramref name="dimension"/> is below 1.</exception>
    public RandomEmbeddingEncoder(
        long seed = 0, int dimension = MiniLmEncoder.EmbeddingDimension, int maxSequenceLength = MiniLmEncoder.DefaultMaxSequenceLength)
    {
        if (dimension < 1)
            throw new LlgbmException($"Random-embedding encoder: the dimension must be at least 1 (got {dimension}).");
        Seed = seed;
        Dimension = dimension;
        Tokenizer = BertUncasedTokenizer.MiniLm(maxSequenceLength);
    }

    /// <inheritdoc/>
    public string Name => EncoderName;

    /// <inheritdoc/>
    public int Dimension { get; }

    /// <summary>The seed of the embedding table.</summary>
    public long Seed { get; }

    /// <summary>The tokenizer (the same as MiniLM's).</summary>
    public BertUncasedTokenizer Tokenizer { get; }

    /// <inheritdoc/>
    public string Identity =>
        $"{EncoderName}|ablation: untrained token embeddings N(0,1) splitmix64-box-muller seed={Seed} dim={Dimension}|bert-uncased " +
        $"vocab-sha256={Tokenizer.VocabularySha256} max-tokens={Tokenizer.MaxLength}|mean-pool|l2";

    /// <summary>The embedding of token <paramref name="id"/>: <see cref="Dimension"/> standard normal draws.</summary>
    public float[] TokenVector(int id) => vectors.GetOrAdd(id, Draw);

    /// <inheritdoc/>
    public Tensor Encode(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var means = new float[texts.Count * Dimension];
        for (var r = 0; r < texts.Count; r++)
        {
            var ids = Tokenizer.Encode(texts[r]);
            var sum = new double[Dimension];
            foreach (var id in ids)
            {
                var v = TokenVector(id);
                for (var d = 0; d < Dimension; d++)
                    sum[d] += v[d];
            }
            for (var d = 0; d < Dimension; d++)
                means[r * Dimension + d] = (float)(sum[d] / ids.Length);
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return SentencePooling.L2Normalize(tensor(means, [texts.Count, Dimension])).MoveToOuterDisposeScope();
    }

    float[] Draw(int id)
    {
        var state = unchecked((ulong)Seed ^ (0xD1B54A32D192ED03UL * ((ulong)(uint)id + 1)));
        var v = new float[Dimension];
        for (var d = 0; d < Dimension; d += 2)
        {
            // Box–Muller: two uniforms in (0, 1] and [0, 1) give two independent standard normals.
            var u1 = 1.0 - Uniform(ref state);
            var u2 = Uniform(ref state);
            var radius = Math.Sqrt(-2.0 * Math.Log(u1));
            v[d] = (float)(radius * Math.Cos(2 * Math.PI * u2));
            if (d + 1 < Dimension)
                v[d + 1] = (float)(radius * Math.Sin(2 * Math.PI * u2));
        }
        return v;
    }

    /// <summary>A uniform double in [0, 1) from the top 53 bits of the next SplitMix64 value.</summary>
    static double Uniform(ref ulong state) => (SplitMix64.Next(ref state) >> 11) * (1.0 / (1UL << 53));

    /// <inheritdoc/>
    public void Dispose() { }
}
