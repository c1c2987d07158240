using LLGBM.Lora;
using LLGBM.Model;

namespace LLGBM.Generators;

/// <summary>One module a generator emits: its path, layer, module type, shape, rank and scale.</summary>
/// <param name="Path">The state-dict path (<c>model.layers.3.self_attn.q_proj</c>).</param>
/// <param name="Layer">The decoder layer.</param>
/// <param name="Module">The module name (<c>q_proj</c>, …).</param>
/// <param name="Out">Output features of the adapted linear module.</param>
/// <param name="In">Input features of the adapted linear module.</param>
/// <param name="Rank">The adapter's rank.</param>
/// <param name="Scale">alpha / r (or alpha / √r).</param>
public sealed record LoraModuleSlot(string Path, int Layer, string Module, long Out, long In, int Rank, double Scale)
{
    /// <summary>Entries of A [r, in] and B [out, r] together.</summary>
    public long FactorSize => Rank * (In + Out);

    /// <summary>The slots of <paramref name="lora"/> on a model of <paramref name="model"/>'s shape, in <see cref="LoraConfig.Paths"/> order.</summary>
    public static IReadOnlyList<LoraModuleSlot> Of(LoraConfig lora, Qwen2Config model) =>
        [.. lora.Validate(model.NumHiddenLayers).Paths(model.NumHiddenLayers).Select(path =>
        {
            var (layer, module) = LoraTarget.Parse(path)!.Value;
            var (o, i) = LoraSet.ShapeOf(model, path);
            return new LoraModuleSlot(path, layer, module, o, i, lora.RankOf(path), lora.ScaleOf(path));
        })];
}
