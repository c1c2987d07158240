using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>
/// An open safetensors file whose header has been validated (see <see cref="SafetensorsHeader"/>). Tensors are read
/// one at a time, each straight from its byte range of the file into a fresh CPU tensor. Reads from several threads
/// at once are safe: they use positioned reads on a shared handle.
/// </summary>
public sealed class SafetensorsReader : IDisposable
{
    private readonly SafeFileHandle handle;

    private SafetensorsReader(SafeFileHandle handle, SafetensorsHeader header)
    {
        this.handle = handle;
        Header = header;
    }

    /// <summary>The path of the file, as given to <see cref="Open"/>.</summary>
    public string Path => Header.File;

    /// <summary>The validated header.</summary>
    public SafetensorsHeader Header { get; }

    /// <summary>The <c>__metadata__</c> object; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;

    /// <summary>The tensors by name: dtype, shape and byte range of each.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries => Header.Entries;

    /// <summary>Opens <paramref name="path"/> and validates its header.</summary>
    /// <exception cref="SafetensorsFormatException">The file breaks a rule of the format.</exception>
    public static SafetensorsReader Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            return new SafetensorsReader(handle, SafetensorsHeader.Read(handle, path));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads the tensor called <paramref name="name"/> into a fresh contiguous CPU tensor of the stored dtype and
    /// shape, and checks that its values are finite (every weight, adapter factor, cache entry and generator
    /// parameter LLGBM reads must be). The caller owns (and disposes) the result.
    /// </summary>
    /// <exception cref="TensorNotFoundException">The file holds no tensor of that name.</exception>
    /// <exception cref="LlgbmException">The dtype has no TorchSharp equivalent (F8_E5M2, F8_E4M3, U16, U32, U64).</exception>
    /// <exception cref="NonFiniteException">The tensor holds NaN or ±infinity; the message names the file and the tensor.</exception>
    public Tensor Read(string name) => Read(name, TensorBytes.DefaultChunkBytes);

    internal Tensor Read(string name, int chunkBytes)
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        if (!Entries.TryGetValue(name, out var entry))
        {
            throw new TensorNotFoundException(name, Path, Entries.Keys.ToArray());
        }
        var scalarType = entry.DType.ToScalarType()
            ?? throw new LlgbmException(
                $"Tensor '{name}' in '{Path}' has dtype {entry.DType.Name()}, which TorchSharp has no element type " +
                "for; readable dtypes are " +
                string.Join(", ", SafetensorsDTypes.All.Where(d => d.ToScalarType() is not null).Select(d => d.Name())));
        EnsureLittleEndian();

        var tensor = empty(entry.ShapeArray(), scalarType, CPU);
        try
        {
            var start = Header.DataOffset + entry.Begin;
            TensorBytes.ForEachChunk(tensor, chunkBytes,
                (chunk, offset) => SafetensorsHeader.ReadExactly(handle, chunk, start + offset, Path));
            FiniteCheck.Tensor(tensor, $"'{Path}': tensor '{name}'");
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => handle.Dispose();

    internal static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException(
                "safetensors data is little-endian and LLGBM does not byte-swap on big-endian machines.");
        }
    }
}
