using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// The weight term of the generator objective, between a generated batched LoRA set and the teachers' (stacked to the
/// same batch). Both sets must hold the same module paths with the same ranks; the teacher side is treated as a
/// constant.
/// </summary>
public static class WeightLosses
{
    /// <summary>
    /// The relative squared error of the weight updates: per adapter n, Σ_m ‖ΔŴ_m − ΔW_m‖_F² / Σ_m ‖ΔW_m‖_F² over the
    /// modules m, averaged over n. ΔW = scale · B · A is invariant to the gauge A → GA, B → BG⁻¹ (so teachers trained
    /// from different initialisations are comparable), and it is computed without forming ΔW:
    /// ‖X − Y‖² = ‖X‖² + ‖Y‖² − 2⟨X, Y⟩ with ⟨s·B̂Â, t·BA⟩ = s·t·trace((B̂ᵀB)(AÂᵀ)), all r × r products. 0 exactly when
    /// every ΔŴ equals its ΔW (up to rounding); 1 for a zero generated adapter.
    /// </summary>
    public static Tensor RelativeDeltaWeight(LoraSet generated, LoraSet teacher)
    {
        using var scope = NewDisposeScope();
        Tensor? error = null, reference = null;
        foreach (var (path, g) in generated.Modules)
        {
            var t = teacher.Get(path) ?? throw new LlgbmException($"Weight loss: the teacher set has no module {path}.");
            var gg = GramInner(g, g);
            var tt = GramInner(t, t).detach();
            var gt = GramInner(g, t);
            using var two = 2.ToScalar();
            var e = gg.add(tt, OwnedScalars.One) - gt * two;
            error = error is null ? e : error.add(e, OwnedScalars.One);
            reference = reference is null ? tt : reference.add(tt, OwnedScalars.One);
        }
        if (error is null)
            throw new LlgbmException("Weight loss: the generated set has no modules.");
        using var floor = 1e-12.ToScalar();
        return (error / reference!.clamp_min(floor)).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per adapter, ⟨ΔW_x, ΔW_y⟩_F for two low-rank modules of the same (out, in): [N] (or a scalar for unbatched
    /// modules), computed as scale_x · scale_y · Σ (B_xᵀB_y) ⊙ (A_x A_yᵀ) — the r_x × r_y products only.
    /// </summary>
    public static Tensor GramInner(LoraModule x, LoraModule y)
    {
        if (x.A is null || y.A is null)
            throw new LlgbmException("Weight loss: dense modules have no factors; compare them as ΔW instead.");
        var btb = x.B!.transpose(-2, -1).matmul(y.B!);
        var aat = x.A.matmul(y.A.transpose(-2, -1));
        using var scale = (x.Scale * y.Scale).ToScalar();
        return (btb * aat).sum([-2, -1]) * scale;
    }

    /// <summary>
    /// The mean squared error of the factors themselves, mean over every entry of A and B of every module (a direct
    /// reconstruction loss, as Text-to-LoRA's; not gauge-invariant).
    /// </summary>
    public static Tensor Factors(LoraSet generated, LoraSet teacher)
    {
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        long count = 0;
        foreach (var (path, g) in generated.Modules)
        {
            var t = teacher.Get(path) ?? throw new LlgbmException($"Weight loss: the teacher set has no module {path}.");
            var e = (g.A! - t.A!.detach()).pow(OwnedScalars.Two).sum().add((g.B! - t.B!.detach()).pow(OwnedScalars.Two).sum(), OwnedScalars.One);
            sum = sum is null ? e : sum.add(e, OwnedScalars.One);
            count += g.A!.numel() + g.B!.numel();
        }
        if (sum is null)
            throw new LlgbmException("Weight loss: the generated set has no modules.");
        using var countScalar = count.ToScalar();
        return (sum / countScalar).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mean squared error between two LoRA-token grids over the entries the mask marks real (the z-normalised values
    /// and the mean and std channels; padding excluded), as Drag-and-Drop LLMs trains its decoder.
    /// </summary>
    public static Tensor Tokens(Tensor generated, Tensor teacher, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var m = mask.to_type(generated.dtype);
        using var one = 1.ToScalar();
        return ((generated - teacher.detach()).pow(OwnedScalars.Two) * m).sum().div(m.sum().clamp_min(one)).MoveToOuterDisposeScope();
    }
}
