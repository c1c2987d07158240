using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Training;

/// <summary>The squared Frobenius norm of an adapter's weight update, as a regulariser.</summary>
public static class AdapterNorm
{
    /// <summary>
    /// Σ over the modules of ‖ΔW‖_F²: for a low-rank module ΔW = scale · B · A, computed without forming ΔW as
    /// scale² · trace((BᵀB)(AAᵀ)) (r × r matrices); for a dense module the squared norm of ΔW. For a batched set the
    /// mean over the N adapters (an unbatched module in a batched set counts the same for every adapter). A scalar
    /// tensor in float32 (float64 when the factors are), differentiable in every factor; 0 for an empty set. The
    /// set's tensors are never disposed.
    /// </summary>
    public static Tensor Penalty(LoraSet set)
    {
        using var scope = NewDisposeScope();
        Tensor? total = null;
        foreach (var module in set.Modules.Values)
        {
            var term = ModuleTerm(module).mean();
            total = total is null ? term : total.add(term, OwnedScalars.One);
        }
        return (total ?? zeros(1).squeeze()).MoveToOuterDisposeScope();
    }

    // ‖ΔW‖_F² per adapter: a scalar, or [N] for a batched module.
    static Tensor ModuleTerm(LoraModule module)
    {
        if (module.Delta is { } delta)
            return Float(delta).pow(OwnedScalars.Two).sum([-2, -1]);
        var a = Float(module.A!);
        var b = Float(module.B!);
        // trace(XY) = Σ X ⊙ Yᵀ, and AAᵀ is symmetric.
        var btb = b.transpose(-2, -1).matmul(b);
        var aat = a.matmul(a.transpose(-2, -1));
        using var scale = (module.Scale * module.Scale).ToScalar();
        return (btb * aat).sum([-2, -1]) * scale;
    }

    static Tensor Float(Tensor t) => t.dtype == ScalarType.Float64 ? t : t.to_type(ScalarType.Float32);
}
