using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// The cosine between the weight updates of adapter i of one batched low-rank set and adapter i of another, over every
/// module together: ⟨ΔW_x,i, ΔW_y,i⟩ / (‖ΔW_x,i‖ ‖ΔW_y,i‖) with ⟨ΔW_x, ΔW_y⟩ = Σ_m s_m² Σ (B_xᵀ B_y) ⊙ (A_x A_yᵀ), without
/// forming any ΔW (as <see cref="AdapterGram"/> does for one set).
/// </summary>
public static class PairedAdapterCosine
{
    /// <summary>One cosine per adapter (float64 arithmetic); two sets of the same modules and count.</summary>
    /// <exception cref="LlgbmException">The sets differ in modules or count, or a module is not batched low-rank.</exception>
    public static double[] Of(LoraSet x, LoraSet y)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor? xy = null, xx = null, yy = null;
        foreach (var (path, mx) in x.Modules)
        {
            if (!y.Modules.TryGetValue(path, out var my))
                throw new LlgbmException($"Paired adapter cosine: module {path} is in the first set only.");
            if (mx.A is null || my.A is null || !mx.IsBatched || !my.IsBatched || mx.Count != my.Count)
                throw new LlgbmException($"Paired adapter cosine: module {path} must be batched low-rank with the same number of adapters in both sets.");
            Tensor Inner(LoraModule p, LoraModule q)
            {
                var bb = einsum("iok,iol->ikl", p.B!.to_type(ScalarType.Float64), q.B!.to_type(ScalarType.Float64));
                var aa = einsum("ikn,iln->ikl", p.A!.to_type(ScalarType.Float64), q.A!.to_type(ScalarType.Float64));
                using var scale = (p.Scale * q.Scale).ToScalar();
                return (bb * aa).sum([-2, -1]) * scale;
            }
            xy = xy is null ? Inner(mx, my) : xy.add(Inner(mx, my), OwnedScalars.One);
            xx = xx is null ? Inner(mx, mx) : xx.add(Inner(mx, mx), OwnedScalars.One);
            yy = yy is null ? Inner(my, my) : yy.add(Inner(my, my), OwnedScalars.One);
        }
        if (xy is null || x.Modules.Count != y.Modules.Count)
            throw new LlgbmException("Paired adapter cosine: the sets must hold the same, non-empty, modules.");
        using var floor = 1e-300.ToScalar();
        var cosine = xy / (xx!.sqrt() * yy!.sqrt()).clamp_min(floor);
        return cosine.cpu().data<double>().ToArray();
    }
}
