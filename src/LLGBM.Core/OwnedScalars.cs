using TorchSharp;

namespace LLGBM;

/// <summary>
/// Scalars the process owns for its whole lifetime, for the TorchSharp overloads that take one. Several TorchSharp
/// conveniences make a temporary scalar inside the library — <c>a.add(b)</c> and <c>a + b</c> are
/// <c>add(b, 1)</c>, <c>x.square()</c> is <c>pow(2)</c>, <c>arange(stop)</c> is <c>arange(0, stop, 1)</c> — and
/// nothing keeps that temporary alive once its handle has been read, so a garbage collection can free it while
/// libtorch still reads it (libtorch's "false INTERNAL ASSERT FAILED at c10/core/Scalar.h"). The hot paths call the
/// explicit overload with one of these instead: the same native call with the same value, so the numbers are
/// identical. The values are integers, as in TorchSharp's own overloads.
/// </summary>
public static class OwnedScalars
{
    /// <summary>0, the start of <c>arange</c>.</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary>1, the alpha of <c>add</c>/<c>add_</c> and the step of <c>arange</c>.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>2, the exponent of <c>square()</c> (<c>pow(2)</c>).</summary>
    public static readonly Scalar Two = 2.ToScalar();
}
