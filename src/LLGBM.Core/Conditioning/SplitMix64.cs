using System.Security.Cryptography;
using System.Text;

namespace LLGBM.Conditioning;

/// <summary>SplitMix64 (Steele, Lea and Flood 2014), the generator behind the seeds of the conditioning code.</summary>
public static class SplitMix64
{
    /// <summary>Advances <paramref name="state"/> and returns the next 64 random bits.</summary>
    public static ulong Next(ref ulong state)
    {
        unchecked
        {
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>
    /// A seed derived from <paramref name="seed"/>, a name and a number: the first SplitMix64 output from the state
    /// seed ⊕ (the first 8 bytes of SHA-256 of the name, little-endian) ⊕ 0xD1B54A32D192ED03 · (number + 1).
    /// </summary>
    public static long Derive(long seed, string name, long number)
    {
        var nameBits = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(name)), 0);
        if (!BitConverter.IsLittleEndian)
            nameBits = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(nameBits);
        var state = unchecked((ulong)seed ^ nameBits ^ (0xD1B54A32D192ED03UL * ((ulong)number + 1)));
        return unchecked((long)Next(ref state));
    }
}
