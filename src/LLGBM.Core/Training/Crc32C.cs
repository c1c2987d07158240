namespace LLGBM.Training;

/// <summary>
/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF), the checksum of
/// TFRecord files (TensorBoard event files), and TFRecord's masked form of it.
/// </summary>
public static class Crc32C
{
    /// <summary>The constant TFRecord adds after rotating a CRC (tensorflow/core/lib/hash/crc32c.h, kMaskDelta).</summary>
    public const uint MaskDelta = 0xA282EAD8;

    static readonly uint[] Table = BuildTable();

    /// <summary>The CRC-32C of <paramref name="data"/>; "123456789" gives 0xE3069283.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    /// <summary>
    /// TFRecord's masked CRC: the CRC rotated right by 15 bits plus <see cref="MaskDelta"/> (wrapping), so that a CRC
    /// stored inside checksummed data does not make the outer checksum degenerate.
    /// </summary>
    public static uint Mask(uint crc) => ((crc >> 15) | (crc << 17)) + MaskDelta;

    /// <summary>The masked CRC-32C of <paramref name="data"/>, as stored in TFRecord files.</summary>
    public static uint Masked(ReadOnlySpan<byte> data) => Mask(Compute(data));

    static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var bit = 0; bit < 8; bit++)
                c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78 : c >> 1;
            table[i] = c;
        }
        return table;
    }
}
