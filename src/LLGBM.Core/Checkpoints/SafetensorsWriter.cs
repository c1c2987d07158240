using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>Writes tensors to a safetensors file.</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> as a safetensors file, atomically: the bytes go
    /// to a temporary file in the same directory that is then renamed over <paramref name="path"/>, so the path
    /// holds either its old content or the whole new file, also when an exception interrupts the write.
    /// </summary>
    /// <remarks>
    /// The data buffer holds the tensors back to back in the given order. Each tensor is copied to CPU memory and
    /// made contiguous as it is written; the caller's tensors are neither changed nor disposed. The header is padded
    /// with spaces to a multiple of 8 bytes, so the data buffer starts 8-byte aligned.
    /// </remarks>
    /// <param name="path">The file to write; its directory must exist.</param>
    /// <param name="tensors">Names and tensors; the names must be unique and not <c>__metadata__</c>.</param>
    /// <param name="metadata">
    /// The <c>__metadata__</c> strings. <c>"format": "pt"</c> is added unless a <c>format</c> key is given, because
    /// Hugging Face transformers refuses files whose metadata lacks it.
    /// </param>
    /// <exception cref="ArgumentException">A name is repeated, empty or reserved, or a tensor is disposed.</exception>
    /// <exception cref="LlgbmException">A tensor's element type has no safetensors dtype (complex, quantized).</exception>
    /// <exception cref="NonFiniteException">A tensor holds NaN or ±infinity; nothing is written.</exception>
    public static void Save(
        string path,
        IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors, metadata, TensorBytes.DefaultChunkBytes);

    internal static void Save(
        string path,
        IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata,
        int chunkBytes) =>
        Write(path, Collect(tensors, path), metadata, chunkBytes);

    /// <summary>A tensor to write, with the facts the header needs.</summary>
    internal readonly record struct Item(string Name, Tensor Tensor, SafetensorsDType DType, long[] Shape, long ByteLength);

    /// <summary>
    /// Enumerates and checks the tensors before anything is written to <paramref name="destination"/> (a file or
    /// checkpoint directory, named in errors): names, element types, and that every value is finite.
    /// </summary>
    internal static List<Item> Collect(IEnumerable<KeyValuePair<string, Tensor>> tensors, string destination)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var items = new List<Item>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name))
            {
                throw new ArgumentException("A tensor name is null or empty.", nameof(tensors));
            }
            if (name == SafetensorsHeader.MetadataKey)
            {
                throw new ArgumentException(
                    $"'{SafetensorsHeader.MetadataKey}' is reserved for metadata and cannot name a tensor.",
                    nameof(tensors));
            }
            if (!names.Add(name))
            {
                throw new ArgumentException($"The tensor name '{name}' is given twice.", nameof(tensors));
            }
            if (tensor is null || tensor.IsInvalid)
            {
                throw new ArgumentException($"The tensor '{name}' is null or disposed.", nameof(tensors));
            }
            var dtype = SafetensorsDTypes.FromScalarType(tensor.dtype)
                ?? throw new LlgbmException(
                    $"Tensor '{name}' has element type {tensor.dtype}, which safetensors has no dtype for.");
            FiniteCheck.Tensor(tensor, $"'{destination}' was not written: tensor '{name}'");
            var byteLength = checked(tensor.numel() * dtype.ElementSize());
            items.Add(new Item(name, tensor, dtype, tensor.shape, byteLength));
        }
        return items;
    }

    /// <summary>Writes checked items to <paramref name="path"/> atomically.</summary>
    internal static void Write(
        string path, IReadOnlyList<Item> items, IReadOnlyDictionary<string, string>? metadata, int chunkBytes)
    {
        SafetensorsReader.EnsureLittleEndian();
        var header = Header(items, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var item in items)
            {
                WriteData(stream, item, chunkBytes);
            }
        });
    }

    private static void WriteData(FileStream stream, Item item, int chunkBytes)
    {
        var start = stream.Position;
        var cpu = item.Tensor.cpu();
        try
        {
            var contiguous = cpu.contiguous();
            try
            {
                if (contiguous.dtype != item.Tensor.dtype || !contiguous.shape.SequenceEqual(item.Shape))
                {
                    throw new InvalidOperationException($"The tensor '{item.Name}' changed while it was being saved.");
                }
                TensorBytes.ForEachChunk(contiguous, chunkBytes, (chunk, _) => stream.Write(chunk));
            }
            finally
            {
                if (!ReferenceEquals(contiguous, cpu))
                {
                    contiguous.Dispose();
                }
            }
        }
        finally
        {
            if (!ReferenceEquals(cpu, item.Tensor))
            {
                cpu.Dispose();
            }
        }
        if (stream.Position - start != item.ByteLength)
        {
            throw new InvalidOperationException(
                $"Wrote {stream.Position - start} bytes for tensor '{item.Name}', expected {item.ByteLength}.");
        }
    }

    /// <summary>The header JSON, padded with spaces to a multiple of 8 bytes.</summary>
    internal static byte[] Header(IReadOnlyList<Item> items, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            json.WriteStartObject(SafetensorsHeader.MetadataKey);
            if (metadata is null || !metadata.ContainsKey("format"))
            {
                json.WriteString("format", "pt");
            }
            if (metadata is not null)
            {
                foreach (var (key, value) in metadata)
                {
                    json.WriteString(key, value);
                }
            }
            json.WriteEndObject();

            long offset = 0;
            foreach (var item in items)
            {
                json.WriteStartObject(item.Name);
                json.WriteString("dtype", item.DType.Name());
                json.WriteStartArray("shape");
                foreach (var dim in item.Shape)
                {
                    json.WriteNumberValue(dim);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset = checked(offset + item.ByteLength);
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }

        var padded = (buffer.WrittenCount + 7) / 8 * 8;
        if (padded > SafetensorsHeader.MaxHeaderLength)
        {
            throw new LlgbmException(
                $"The safetensors header for {items.Count} tensors would take {padded} bytes, over the " +
                $"{SafetensorsHeader.MaxHeaderLength} bytes readers accept; split the tensors over several files.");
        }
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }
}
