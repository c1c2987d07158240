using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>
/// Visits the storage of a contiguous CPU tensor as spans of bytes. <see cref="Tensor.bytes"/> is a writable span
/// over the tensor's own memory but is limited to <see cref="int.MaxValue"/> bytes, so larger tensors are visited
/// through views of at most <c>chunkBytes</c> bytes each.
/// </summary>
internal static class TensorBytes
{
    /// <summary>The chunk size used outside tests: 1 GiB.</summary>
    public const int DefaultChunkBytes = 1 << 30;

    /// <summary>Receives one chunk of a tensor's storage and its byte offset within the tensor.</summary>
    public delegate void ChunkAction(Span<byte> chunk, long offset);

    /// <summary>Calls <paramref name="action"/> on consecutive chunks covering all of the tensor's bytes.</summary>
    public static void ForEachChunk(Tensor tensor, int chunkBytes, ChunkAction action)
    {
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous())
        {
            throw new ArgumentException("Expected a contiguous CPU tensor.", nameof(tensor));
        }
        var count = tensor.numel();
        if (count == 0)
        {
            return;
        }
        var size = tensor.element_size();
        if (checked(count * size) <= chunkBytes)
        {
            action(tensor.bytes, 0);
            return;
        }
        var perChunk = Math.Max(1, chunkBytes / size);
        using var flat = tensor.view(-1);
        for (long start = 0; start < count; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, count - start));
            action(part.bytes, start * size);
        }
    }
}
