using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// An encoder that looks every text up in an <see cref="EncodingCache"/> first and encodes only the texts it misses
/// (each distinct one once, in one call to the inner encoder), storing what it computed. It has the inner encoder's
/// name, dimension and identity, and returns the same values: a hit gives back exactly the float32 numbers stored.
/// </summary>
public sealed class CachedSentenceEncoder : ISentenceEncoder
{
    readonly bool ownsInner;
    long memoryHits;
    long diskHits;
    long misses;

    /// <summary>Wraps <paramref name="inner"/>; <see cref="Dispose"/> disposes it when <paramref name="ownsInner"/>.</summary>
    public CachedSentenceEncoder(ISentenceEncoder inner, EncodingCache cache, bool ownsInner = true)
    {
        Inner = inner;
        Cache = cache;
        this.ownsInner = ownsInner;
    }

    /// <summary>The encoder that computes what the cache misses.</summary>
    public ISentenceEncoder Inner { get; }

    /// <summary>The cache.</summary>
    public EncodingCache Cache { get; }

    /// <summary>Texts found in memory so far.</summary>
    public long MemoryHits => Interlocked.Read(ref memoryHits);

    /// <summary>Texts read from the cache directory so far.</summary>
    public long DiskHits => Interlocked.Read(ref diskHits);

    /// <summary>Distinct texts the inner encoder has encoded so far.</summary>
    public long Misses => Interlocked.Read(ref misses);

    /// <inheritdoc/>
    public string Name => Inner.Name;

    /// <inheritdoc/>
    public int Dimension => Inner.Dimension;

    /// <inheritdoc/>
    public string Identity => Inner.Identity;

    /// <inheritdoc/>
    public Tensor Encode(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var identity = Identity;
        var rows = new float[texts.Count][];
        var missing = new List<string>();
        var missingSet = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < texts.Count; i++)
        {
            if (Cache.TryGet(identity, texts[i], Dimension, out var found, out var fromDisk))
            {
                rows[i] = found;
                Interlocked.Increment(ref fromDisk ? ref diskHits : ref memoryHits);
            }
            else if (missingSet.Add(texts[i]))
                missing.Add(texts[i]);
        }
        if (missing.Count > 0)
        {
            using var encoded = Inner.Encode(missing);
            if (encoded.dim() != 2 || encoded.shape[0] != missing.Count || encoded.shape[1] != Dimension)
                throw new LlgbmException(
                    $"Encoder {Name}: encoding {missing.Count} texts gave shape [{string.Join(", ", encoded.shape)}], expected [{missing.Count}, " +
                    $"{Dimension}].");
            using var cpu = encoded.to(ScalarType.Float32).cpu().contiguous();
            var values = cpu.data<float>().ToArray();
            var byText = new Dictionary<string, float[]>(StringComparer.Ordinal);
            for (var m = 0; m < missing.Count; m++)
            {
                var row = values.AsSpan(m * Dimension, Dimension).ToArray();
                Cache.Put(Inner, missing[m], row);
                byText[missing[m]] = row;
            }
            Interlocked.Add(ref misses, missing.Count);
            for (var i = 0; i < texts.Count; i++)
                rows[i] ??= byText[texts[i]];
        }
        var flat = new float[texts.Count * Dimension];
        for (var i = 0; i < texts.Count; i++)
            rows[i].CopyTo(flat, i * Dimension);
        return tensor(flat, [texts.Count, Dimension]);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (ownsInner)
            Inner.Dispose();
    }
}
