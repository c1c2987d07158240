using System.Buffers.Binary;

namespace LLGBM.Training;

/// <summary>
/// The TFRecord framing of TensorBoard event files (tensorboard/summary/writer/record_writer.py): per record the
/// data length as uint64, the masked CRC-32C of those 8 bytes as uint32, the data, and the masked CRC-32C of the data
/// as uint32, all little-endian.
/// </summary>
public static class TfRecord
{
    /// <summary>The bytes a record adds around its data: length, length CRC and data CRC.</summary>
    public const int Overhead = 8 + 4 + 4;

    /// <summary>Writes one record holding <paramref name="data"/> to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Crc32C.Masked(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Masked(data));
        stream.Write(header);
        stream.Write(data);
        stream.Write(footer);
    }
}
