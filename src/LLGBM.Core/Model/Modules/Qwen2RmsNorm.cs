using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>
/// Qwen2 RMS norm: upcast to float32, x · rsqrt(mean(x²) + eps), cast back to the input dtype, then scale by
/// <c>weight</c> (initialised to ones). x² is <c>pow(x, 2)</c> and the sum <c>add(eps, 1)</c>, with eps a
/// <see cref="Scalar"/> the module owns and 2 and 1 from <see cref="OwnedScalars"/>: a temporary scalar per call could
/// be finalized while libtorch still reads it.
/// </summary>
public sealed class Qwen2RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Per-channel scale, state-dict name <c>weight</c>.</summary>
    public readonly Parameter weight;

    readonly Scalar eps;

    /// <summary>Creates a norm over the last dimension of width <paramref name="size"/>.</summary>
    public Qwen2RmsNorm(long size, double eps, Device? device = null, ScalarType dtype = ScalarType.Float32)
        : base(nameof(Qwen2RmsNorm))
    {
        weight = new Parameter(ones(size, dtype: dtype, device: device));
        // The parameter belongs to the module, not to whatever dispose scope is active while the module is built.
        weight.DetachFromDisposeScope();
        this.eps = eps.ToScalar();
        RegisterComponents();
    }

    /// <summary>Disposes the eps scalar too.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            eps.Dispose();
        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var normed = x32 * x32.pow(OwnedScalars.Two).mean([-1L], keepdim: true).add(eps, OwnedScalars.One).rsqrt();
        return (weight * normed.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}
