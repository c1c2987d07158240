using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>
/// Keys and values of past positions for incremental decoding, per layer [B, nKV, Tpast, hd] (after rotation,
/// before KV-head repetition). Owns its tensors: dispose it when decoding ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor?[] keys;
    readonly Tensor?[] values;

    /// <summary>An empty cache for a model of <paramref name="layers"/> layers.</summary>
    public KvCache(int layers)
    {
        keys = new Tensor?[layers];
        values = new Tensor?[layers];
    }

    /// <summary>Number of cached positions (0 when empty).</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>
    /// Appends new keys and values of one layer and returns the layer's whole history. The returned tensors belong
    /// to the cache.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor newKeys, Tensor newValues)
    {
        var k = keys[layer] is { } oldK ? cat([oldK, newKeys], dim: 2) : newKeys.clone();
        var v = values[layer] is { } oldV ? cat([oldV, newValues], dim: 2) : newValues.clone();
        keys[layer]?.Dispose();
        values[layer]?.Dispose();
        keys[layer] = k.detach().DetachFromDisposeScope();
        values[layer] = v.detach().DetachFromDisposeScope();
        return (keys[layer]!, values[layer]!);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i]?.Dispose();
            values[i]?.Dispose();
            keys[i] = null;
            values[i] = null;
        }
    }
}
