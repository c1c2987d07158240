using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// The pooling of sentence-transformers' <c>Pooling</c> (mean mode) and <c>Normalize</c> modules: the mean of the
/// token states over real tokens, then division by the L2 norm.
/// </summary>
public static class SentencePooling
{
    /// <summary>The smallest token count divided by (sentence-transformers clamps the mask sum to 1e-9).</summary>
    public const double MinTokenCount = 1e-9;

    /// <summary>The smallest norm divided by (<c>torch.nn.functional.normalize</c>'s default eps).</summary>
    public const double MinNorm = 1e-12;

    /// <summary>
    /// The mean of <paramref name="hidden"/> [K, T, D] over the positions where <paramref name="mask"/> [K, T] is 1:
    /// [K, D] in <paramref name="hidden"/>'s dtype. Padding positions contribute nothing.
    /// </summary>
    public static Tensor MeanPool(Tensor hidden, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var weights = mask.to_type(hidden.dtype).unsqueeze(-1);
        var sum = (hidden * weights).sum(1);
        using var minCount = MinTokenCount.ToScalar();
        var count = weights.sum(1).clamp_min(minCount);
        return (sum / count).MoveToOuterDisposeScope();
    }

    /// <summary>Each row of <paramref name="x"/> [K, D] divided by its L2 norm (at least <see cref="MinNorm"/>).</summary>
    public static Tensor L2Normalize(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var minNorm = MinNorm.ToScalar();
        var norm = x.pow(OwnedScalars.Two).sum(-1, keepdim: true).sqrt().clamp_min(minNorm);
        return (x / norm).MoveToOuterDisposeScope();
    }
}
