using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Delta;

/// <summary>
/// Losses between a predicted and a target delta activation (or any vectors): inputs of shape [D] or [N, D] (the last
/// dimension is the vector, any leading dimensions are a batch), both of the same shape. Each returns a scalar
/// tensor — the mean over the batch when there is one — that is differentiable in both arguments. The inputs are
/// never disposed or modified.
/// </summary>
public static class DeltaLosses
{
    /// <summary>
    /// Mean squared error: the mean over D (and over N) of (predicted − target)². Symmetric; scaling both inputs by c
    /// scales it by c².
    /// </summary>
    public static Tensor Mse(Tensor predicted, Tensor target)
    {
        CheckShapes(predicted, target, nameof(Mse));
        using var scope = NewDisposeScope();
        return (predicted - target).pow(OwnedScalars.Two).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mean squared error between the L2-normalised vectors: the mean over D of (p̂ − t̂)², with
    /// x̂ = x / max(‖x‖, <paramref name="eps"/>). For unit vectors ‖p̂ − t̂‖² = 2 − 2·cos, so the loss is
    /// (2 − 2·cos) / D per vector (e.g. 1 for [1, 0] against [0, 1]), averaged over N. Symmetric, and invariant to
    /// scaling either argument by a positive factor (as long as the norm stays above eps). A zero vector (norm below
    /// eps) normalises to the zero vector instead of dividing by zero, so the loss stays finite: a zero vector against
    /// a non-zero one gives 1 / D, two zero vectors give 0, and the gradients stay finite.
    /// </summary>
    public static Tensor NormalizedMse(Tensor predicted, Tensor target, double eps = 1e-8)
    {
        CheckShapes(predicted, target, nameof(NormalizedMse));
        using var scope = NewDisposeScope();
        return (Normalize(predicted, eps) - Normalize(target, eps)).pow(OwnedScalars.Two).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cosine distance 1 − cos(predicted, target) per vector, averaged over N; cos is the dot product of the vectors
    /// normalised as in <see cref="NormalizedMse"/>. In [0, 2]; symmetric, and invariant to scaling either argument by
    /// a positive factor. A zero vector (norm below <paramref name="eps"/>) has cos 0 with anything, so the distance
    /// is 1 and finite.
    /// </summary>
    public static Tensor CosineDistance(Tensor predicted, Tensor target, double eps = 1e-8)
    {
        CheckShapes(predicted, target, nameof(CosineDistance));
        using var scope = NewDisposeScope();
        var cos = (Normalize(predicted, eps) * Normalize(target, eps)).sum(-1);
        using var one = 1.0.ToScalar();
        return cos.neg().add(one, OwnedScalars.One).mean().MoveToOuterDisposeScope();
    }

    // x / max(‖x‖, eps) along the last dimension; the norm's gradient is zero (not NaN) at the zero vector. The 2-norm
    // is Tensor.norm (libtorch's linalg_vector_norm with ord 2), which takes the order as a number, not a Scalar.
    static Tensor Normalize(Tensor x, double eps)
    {
        using var floor = eps.ToScalar();
        return x / x.norm(-1, keepdim: true).clamp_min(floor);
    }

    static void CheckShapes(Tensor predicted, Tensor target, string loss)
    {
        if (predicted.dim() == 0 || !predicted.shape.SequenceEqual(target.shape))
            throw new LlgbmException(
                $"DeltaLosses.{loss}: predicted and target must have the same shape [D] or [N, D]; " +
                $"found [{string.Join(", ", predicted.shape)}] and [{string.Join(", ", target.shape)}].");
    }
}
