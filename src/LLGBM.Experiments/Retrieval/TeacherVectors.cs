using LLGBM.Algebra;
using LLGBM.Model;

namespace LLGBM.Experiments;

/// <summary>
/// The task vectors of pool entries for a model of architecture <paramref name="config"/>, each loaded once and kept
/// until this object is disposed; <see cref="Load"/> is the <c>load</c> step of <see cref="RetrieveMerge.Run"/>.
/// </summary>
public sealed class TeacherVectors(Qwen2Config config) : IDisposable
{
    readonly Dictionary<string, TaskVector> cache = new(StringComparer.Ordinal);

    /// <summary>The task vector of the entry's adapter (loaded on first use; owned by this object).</summary>
    public TaskVector Load(RetrieveMerge.PoolEntry entry)
    {
        if (!cache.TryGetValue(entry.AdapterDir, out var vector))
            cache[entry.AdapterDir] = vector = TaskVectorModule.Load(config, entry.AdapterDir);
        return vector;
    }

    /// <summary>The number of adapters loaded.</summary>
    public int Count => cache.Count;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var v in cache.Values)
            v.Dispose();
        cache.Clear();
    }
}
