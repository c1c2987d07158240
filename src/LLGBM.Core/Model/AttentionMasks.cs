using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>Masks and positions derived from a padding mask, for batches of unequal length.</summary>
public static class AttentionMasks
{
    /// <summary>
    /// The additive attention mask [B, 1, T, Tpast + T]: 0 where key j is visible to query i (j ≤ Tpast + i and
    /// key j is a real token), the most negative finite value of <paramref name="dtype"/> elsewhere. A finite value
    /// (not −∞) keeps fully masked rows (padding queries) free of NaN.
    /// </summary>
    public static Tensor Additive(Tensor paddingMask, long past, long length, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var total = past + length;
        var device = paddingMask.device;
        using var from = past.ToScalar();
        using var to = total.ToScalar();
        using var start = 0.ToScalar();
        var queryPositions = arange(from, to, OwnedScalars.One, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var keyPositions = arange(start, to, OwnedScalars.One, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        var causal = keyPositions.le(queryPositions);
        var keyIsReal = paddingMask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(1);
        var visible = causal.unsqueeze(0).unsqueeze(0).logical_and(keyIsReal);
        using var blockedValue = MostNegative(dtype).ToScalar();
        var blocked = zeros(visible.shape, dtype: dtype, device: device).masked_fill(visible.logical_not(), blockedValue);
        return blocked.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rotary positions [B, T] of the last <paramref name="length"/> columns of <paramref name="paddingMask"/>
    /// [B, Tpast + T]: each real token's position is the count of real tokens before it; padding gets position 1
    /// (it is masked anyway).
    /// </summary>
    public static Tensor PositionIds(Tensor paddingMask, long length)
    {
        using var scope = NewDisposeScope();
        var mask = paddingMask.to_type(ScalarType.Int64);
        using var one = 1.ToScalar();
        using var zero = 0.ToScalar();
        var positions = mask.cumsum(1) - one;
        positions = positions.masked_fill(mask.eq(zero), one);
        var total = mask.shape[1];
        return positions[TensorIndex.Colon, TensorIndex.Slice(total - length)].contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Index [B] of the last real token among the last <paramref name="length"/> columns of the mask.</summary>
    public static Tensor LastRealIndex(Tensor paddingMask, long length)
    {
        using var scope = NewDisposeScope();
        var total = paddingMask.shape[1];
        var current = paddingMask[TensorIndex.Colon, TensorIndex.Slice(total - length)].to_type(ScalarType.Int64);
        using var end = length.ToScalar();
        var positions = arange(OwnedScalars.Zero, end, OwnedScalars.One, dtype: ScalarType.Int64, device: paddingMask.device).unsqueeze(0);
        return (current * positions).argmax(1).MoveToOuterDisposeScope();
    }

    /// <summary>The most negative finite value of a floating dtype.</summary>
    public static double MostNegative(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => double.MinValue,
        ScalarType.Float32 => float.MinValue,
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        _ => throw new ArgumentException($"Attention masks need a floating dtype, not {dtype}.", nameof(dtype)),
    };
}
