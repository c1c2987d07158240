namespace LLGBM.Model;

/// <summary>How attention is computed; both give the same result up to floating-point rounding.</summary>
public enum AttentionImplementation
{
    /// <summary>libtorch's fused scaled-dot-product attention (the default; fastest).</summary>
    Sdpa,

    /// <summary>Explicit <c>softmax(q kᵀ / √hd + mask) v</c> with the softmax in float32, as the reference describes it.</summary>
    Eager,
}
