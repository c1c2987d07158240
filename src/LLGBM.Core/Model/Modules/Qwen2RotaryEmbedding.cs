using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>
/// NeoX-style (non-interleaved) rotary position embedding: <c>inv_freq[j] = 1 / θ^(2j/hd)</c> for j &lt; hd/2,
/// angles <c>pos ⊗ inv_freq</c> duplicated to hd, built in float32. <c>inv_freq</c> is a non-persistent buffer:
/// it moves with the module (and stays float32 when the module's dtype changes) but is not part of the state dict.
/// </summary>
public sealed class Qwen2RotaryEmbedding : nn.Module
{
    /// <summary>Creates the embedding for heads of width <paramref name="headDim"/>.</summary>
    public Qwen2RotaryEmbedding(int headDim, double theta, Device? device = null) : base(nameof(Qwen2RotaryEmbedding))
    {
        using var start = 0.ToScalar();
        using var stop = headDim.ToScalar();
        using var step = 2.ToScalar();
        using var one = 1.0.ToScalar();
        using var steps = arange(start, stop, step, dtype: ScalarType.Float64, device: device);
        using var exponents = steps / stop;
        using var thetaTensor = tensor(theta);
        using var powers = pow(thetaTensor, exponents);
        // The buffer belongs to the module, not to whatever dispose scope is active while the module is built.
        register_buffer("inv_freq", (one / powers).to_type(ScalarType.Float32).DetachFromDisposeScope(), persistent: false);
    }

    /// <summary>
    /// Moves <c>inv_freq</c> along when the module moves to another device. TorchSharp's <c>named_buffers</c> skips a
    /// module's own non-persistent buffers, so the base class would leave it behind. A dtype change leaves it float32.
    /// </summary>
    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        var invFreq = get_buffer("inv_freq")!;
        if (device is null || (invFreq.device_type == device.type && invFreq.device_index == device.index))
            return;
        var moved = invFreq.to(device, non_blocking: non_blocking).DetachFromDisposeScope();
        if (ReferenceEquals(moved, invFreq))
            return;
        ConditionallyRegisterBuffer("inv_freq", moved, persistent: false);
        invFreq.Dispose();
    }

    /// <summary>Disposes <c>inv_freq</c> too, which the base class does not see (see <see cref="_toEpilog"/>).</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            get_buffer("inv_freq")?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>
    /// cos and sin of the rotary angles for integer positions <paramref name="positionIds"/> [B, T], each [B, T, hd],
    /// cast to <paramref name="dtype"/>.
    /// </summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = get_buffer("inv_freq")!;
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq.to(positionIds.device);
        var emb = cat([freqs, freqs], dim: -1);
        var cos = emb.cos().to_type(dtype).MoveToOuterDisposeScope();
        var sin = emb.sin().to_type(dtype).MoveToOuterDisposeScope();
        return (cos, sin);
    }

    /// <summary><c>rotate_half([x1, x2]) = cat(−x2, x1)</c> over the last dimension.</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var x1 = x[TensorIndex.Ellipsis, TensorIndex.Slice(0, half)];
        var x2 = x[TensorIndex.Ellipsis, TensorIndex.Slice(half)];
        return cat([-x2, x1], dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>Applies the rotation to <paramref name="x"/> [B, heads, T, hd] given cos/sin [B, T, hd].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var c = cos.unsqueeze(1);
        var s = sin.unsqueeze(1);
        return (x * c).add(RotateHalf(x) * s, OwnedScalars.One).MoveToOuterDisposeScope();
    }
}
