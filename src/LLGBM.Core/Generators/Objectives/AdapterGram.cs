using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// Frobenius inner products between the weight updates of a batch of low-rank adapters, without forming any ΔW:
/// G[i, j] = Σ_m ⟨ΔW_m,i, ΔW_m,j⟩ = Σ_m s_m² Σ (B_iᵀB_j) ⊙ (A_i A_jᵀ). Distances and norms in weight space follow:
/// ‖ΔW_i − ΔW_j‖² = G[i, i] + G[j, j] − 2 G[i, j].
/// </summary>
public static class AdapterGram
{
    /// <summary>G [M, M] (float64, on the CPU, no gradients) of the M adapters of a batched low-rank set.</summary>
    public static double[,] Of(LoraSet batched)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor? g = null;
        foreach (var module in batched.Modules.Values)
        {
            if (module.A is null || !module.IsBatched)
                throw new LlgbmException("Adapter Gram matrix: every module must be batched and low-rank.");
            var a = module.A.to_type(ScalarType.Float64);
            var b = module.B!.to_type(ScalarType.Float64);
            var btb = einsum("iok,jol->ijkl", b, b);
            var aat = einsum("ikn,jln->ijkl", a, a);
            using var scale = (module.Scale * module.Scale).ToScalar();
            var term = (btb * aat).sum([-2, -1]) * scale;
            g = g is null ? term : g.add(term, OwnedScalars.One);
        }
        if (g is null)
            throw new LlgbmException("Adapter Gram matrix: the set has no modules.");
        var m = (int)g.shape[0];
        var values = g.cpu().data<double>().ToArray();
        var result = new double[m, m];
        for (var i = 0; i < m; i++)
            for (var j = 0; j < m; j++)
                result[i, j] = values[i * m + j];
        return result;
    }

    /// <summary>‖ΔW_i − ΔW_j‖ from a Gram matrix (clamped at 0 against rounding).</summary>
    public static double Distance(double[,] gram, int i, int j) => Math.Sqrt(Math.Max(0, gram[i, i] + gram[j, j] - 2 * gram[i, j]));
}
