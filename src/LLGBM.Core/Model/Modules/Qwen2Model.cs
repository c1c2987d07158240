using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>The Qwen2 trunk: <c>embed_tokens</c> → decoder <c>layers</c> → final <c>norm</c>.</summary>
public sealed class Qwen2Model : nn.Module
{
    /// <summary>Token embedding [V, H].</summary>
    public readonly Embedding embed_tokens;

    /// <summary>The decoder layers.</summary>
    public readonly ModuleList<Qwen2DecoderLayer> layers;

    /// <summary>The final RMS norm.</summary>
    public readonly Qwen2RmsNorm norm;

    /// <summary>Rotary embedding (holds only the non-persistent <c>inv_freq</c> buffer).</summary>
    public readonly Qwen2RotaryEmbedding rotary_emb;

    /// <summary>Creates the trunk of <paramref name="config"/>.</summary>
    public Qwen2Model(Qwen2Config config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2Model))
    {
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, device: device, dtype: dtype);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new Qwen2DecoderLayer(config, i, device, dtype)).ToArray());
        norm = new Qwen2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        rotary_emb = new Qwen2RotaryEmbedding(config.HeadDim, config.RopeTheta, device);
        RegisterComponents();
    }
}
