using System.Buffers.Binary;
using System.Text;

namespace LLGBM.Training;

/// <summary>
/// Encodes a protocol-buffer message field by field in the wire format (keys are varints of field number × 8 + wire
/// type: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit; fixed-width values are little-endian), for the few
/// messages LLGBM writes without a protobuf library (TensorBoard events).
/// </summary>
internal sealed class ProtobufWriter
{
    readonly MemoryStream buffer = new();

    /// <summary>The message encoded so far.</summary>
    public byte[] ToArray() => buffer.ToArray();

    /// <summary>A <c>double</c> field (wire type 1).</summary>
    public ProtobufWriter Double(int field, double value)
    {
        Key(field, 1);
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(bytes, value);
        buffer.Write(bytes);
        return this;
    }

    /// <summary>A <c>float</c> field (wire type 5).</summary>
    public ProtobufWriter Float(int field, float value)
    {
        Key(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        buffer.Write(bytes);
        return this;
    }

    /// <summary>An <c>int64</c> or enum field (wire type 0; negative values take ten bytes, as protobuf specifies).</summary>
    public ProtobufWriter Int64(int field, long value)
    {
        Key(field, 0);
        Varint(unchecked((ulong)value));
        return this;
    }

    /// <summary>A <c>string</c> field (wire type 2, UTF-8).</summary>
    public ProtobufWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    /// <summary>An embedded message field (wire type 2).</summary>
    public ProtobufWriter Message(int field, ProtobufWriter message) =>
        Bytes(field, message.buffer.GetBuffer().AsSpan(0, (int)message.buffer.Length));

    ProtobufWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Key(field, 2);
        Varint((ulong)value.Length);
        buffer.Write(value);
        return this;
    }

    void Key(int field, int wireType) => Varint(((ulong)field << 3) | (uint)wireType);

    void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        buffer.WriteByte((byte)value);
    }
}
