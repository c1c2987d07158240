using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>
/// The weights of a Hugging Face checkpoint directory, from one <c>model.safetensors</c> or from the shards that
/// <c>model.safetensors.index.json</c> lists. Made by <see cref="CheckpointWeights.Open"/>, which validates every
/// header and the index before returning; tensors are then read one at a time.
/// </summary>
public sealed class CheckpointReader : IDisposable
{
    private readonly IReadOnlyList<SafetensorsReader> files;
    private readonly Dictionary<string, SafetensorsReader> owners;
    private readonly string[] names;

    internal CheckpointReader(
        string directory, bool sharded, IReadOnlyList<SafetensorsReader> files, long? indexTotalSize)
    {
        Directory = directory;
        IsSharded = sharded;
        IndexTotalSize = indexTotalSize;
        this.files = files;
        owners = new Dictionary<string, SafetensorsReader>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            foreach (var name in file.Entries.Keys)
            {
                owners.Add(name, file);
            }
        }
        names = [.. owners.Keys.Order(StringComparer.Ordinal)];
    }

    /// <summary>The checkpoint directory, as given.</summary>
    public string Directory { get; }

    /// <summary>True when the weights come from an index and shards, false for a single <c>model.safetensors</c>.</summary>
    public bool IsSharded { get; }

    /// <summary>The <c>metadata.total_size</c> of the index, if it has one; null for a single file.</summary>
    public long? IndexTotalSize { get; }

    /// <summary>The paths of the weight files, in the order the index first names them.</summary>
    public IReadOnlyList<string> Files => [.. files.Select(f => f.Path)];

    /// <summary>Every tensor name, in ordinal order.</summary>
    public IReadOnlyList<string> Names => names;

    /// <summary>Whether the checkpoint holds a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name) => owners.ContainsKey(name);

    /// <summary>The dtype, shape and byte range (within its file) of the tensor called <paramref name="name"/>.</summary>
    /// <exception cref="TensorNotFoundException">The checkpoint holds no tensor of that name.</exception>
    public SafetensorsEntry Entry(string name) => Owner(name).Entries[name];

    /// <summary>The path of the weight file that holds the tensor called <paramref name="name"/>.</summary>
    /// <exception cref="TensorNotFoundException">The checkpoint holds no tensor of that name.</exception>
    public string FileOf(string name) => Owner(name).Path;

    /// <summary>
    /// Reads the tensor called <paramref name="name"/> into a fresh contiguous CPU tensor of the stored dtype.
    /// The caller owns (and disposes) the result.
    /// </summary>
    /// <exception cref="TensorNotFoundException">The checkpoint holds no tensor of that name.</exception>
    /// <exception cref="LlgbmException">The dtype has no TorchSharp equivalent.</exception>
    public Tensor Read(string name) => Owner(name).Read(name);

    /// <summary>Closes every weight file.</summary>
    public void Dispose()
    {
        foreach (var file in files)
        {
            file.Dispose();
        }
    }

    private SafetensorsReader Owner(string name) =>
        owners.TryGetValue(name, out var owner)
            ? owner
            : throw new TensorNotFoundException(name, Directory, names);
}
