namespace LLGBM.Checkpoints;

/// <summary>One tensor as a safetensors header describes it: its element type, shape and byte range.</summary>
public sealed class SafetensorsEntry
{
    private readonly long[] shape;

    /// <summary>Describes a tensor; <paramref name="shape"/> is copied.</summary>
    /// <param name="name">The tensor's name in the header.</param>
    /// <param name="dtype">The element type.</param>
    /// <param name="shape">The dimensions, outermost first; empty for a scalar.</param>
    /// <param name="begin">The first byte of the tensor, relative to the start of the data buffer.</param>
    /// <param name="end">One past the last byte of the tensor, relative to the start of the data buffer.</param>
    public SafetensorsEntry(string name, SafetensorsDType dtype, IReadOnlyList<long> shape, long begin, long end)
    {
        Name = name;
        DType = dtype;
        this.shape = [.. shape];
        Begin = begin;
        End = end;
    }

    /// <summary>The tensor's name in the header.</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public SafetensorsDType DType { get; }

    /// <summary>The dimensions, outermost first; empty for a scalar.</summary>
    public IReadOnlyList<long> Shape => shape;

    /// <summary>The first byte of the tensor, relative to the start of the data buffer (<c>data_offsets[0]</c>).</summary>
    public long Begin { get; }

    /// <summary>One past the last byte, relative to the start of the data buffer (<c>data_offsets[1]</c>).</summary>
    public long End { get; }

    /// <summary>The number of bytes the tensor occupies, <see cref="End"/> − <see cref="Begin"/>.</summary>
    public long ByteLength => End - Begin;

    /// <summary>The shape as a fresh array, the form TorchSharp's factories take.</summary>
    public long[] ShapeArray() => [.. shape];

    /// <summary>A short description such as <c>F32 [2, 3]</c>.</summary>
    public override string ToString() => $"{DType.Name()} [{string.Join(", ", shape)}]";
}
