using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>
/// Qwen2 RMS norm: upcast to float32, x · rsqrt(mean(x²) + eps), cast back to the input dtype, then scale by
/// <c>weight</c> (initialised to ones).
/// </summary>
public sealed class Qwen2RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Per-channel scale, state-dict name <c>weight</c>.</summary>
    public readonly Parameter weight;

    readonly double eps;

    /// <summary>Creates a norm over the last dimension of width <paramref name="size"/>.</summary>
    public Qwen2RmsNorm(long size, double eps, Device? device = null, ScalarType dtype = ScalarType.Float32)
        : base(nameof(Qwen2RmsNorm))
    {
        weight = new Parameter(ones(size, dtype: dtype, device: device));
        // The parameter belongs to the module, not to whatever dispose scope is active while the module is built.
        weight.DetachFromDisposeScope();
        this.eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1L], keepdim: true) + eps).rsqrt();
        return (weight * normed.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}
