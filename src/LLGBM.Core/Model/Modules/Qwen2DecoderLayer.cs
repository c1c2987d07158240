using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>
/// Pre-norm decoder layer: <c>h = x + self_attn(input_layernorm(x))</c>, <c>out = h + mlp(post_attention_layernorm(h))</c>.
/// </summary>
public sealed class Qwen2DecoderLayer : nn.Module
{
    /// <summary>The attention block.</summary>
    public readonly Qwen2Attention self_attn;

    /// <summary>The MLP block.</summary>
    public readonly Qwen2Mlp mlp;

    /// <summary>Norm before attention.</summary>
    public readonly Qwen2RmsNorm input_layernorm;

    /// <summary>Norm before the MLP.</summary>
    public readonly Qwen2RmsNorm post_attention_layernorm;

    /// <summary>Position of this layer in the stack (its index in state-dict names).</summary>
    public int LayerIndex { get; }

    /// <summary>Creates layer <paramref name="layerIndex"/> of <paramref name="config"/>.</summary>
    public Qwen2DecoderLayer(Qwen2Config config, int layerIndex, Device? device = null, ScalarType dtype = ScalarType.Float32)
        : base(nameof(Qwen2DecoderLayer))
    {
        LayerIndex = layerIndex;
        self_attn = new Qwen2Attention(config, device, dtype);
        mlp = new Qwen2Mlp(config, device, dtype);
        input_layernorm = new Qwen2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        post_attention_layernorm = new Qwen2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>Runs the layer on <paramref name="x"/> [B, T, H]; see <see cref="Qwen2Attention.Forward"/> for the other arguments.</summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache, AttentionImplementation implementation, Lora.LoraSet? lora = null)
    {
        using var scope = NewDisposeScope();
        var h = x.add(self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, LayerIndex, implementation, lora), OwnedScalars.One);
        return h.add(mlp.Forward(post_attention_layernorm.forward(h), lora, LayerIndex), OwnedScalars.One).MoveToOuterDisposeScope();
    }
}
