using LLGBM.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model.Modules;

/// <summary>
/// Qwen2 grouped-query self-attention: biased q/k/v projections, rotary embedding on q and k, KV heads shared by
/// groups of nH/nKV query heads, causal and padding mask, and an output projection without bias.
/// </summary>
public sealed class Qwen2Attention : nn.Module
{
    /// <summary>Query projection H → nH·hd, with bias.</summary>
    public readonly Linear q_proj;

    /// <summary>Key projection H → nKV·hd, with bias.</summary>
    public readonly Linear k_proj;

    /// <summary>Value projection H → nKV·hd, with bias.</summary>
    public readonly Linear v_proj;

    /// <summary>Output projection nH·hd → H, no bias.</summary>
    public readonly Linear o_proj;

    readonly int heads;
    readonly int kvHeads;
    readonly int headDim;

    /// <summary>Creates the attention block of <paramref name="config"/>.</summary>
    public Qwen2Attention(Qwen2Config config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2Attention))
    {
        heads = config.NumAttentionHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        q_proj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: true, device: device, dtype: dtype);
        k_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
        v_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
        o_proj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>
    /// Attention over <paramref name="x"/> [B, T, H]. <paramref name="mask"/> is an additive mask [B, 1, T, Tpast+T]
    /// (0 where a key is visible, a large negative number elsewhere), or null for plain causal attention with no
    /// padding and no cache. With a cache, the new keys and values (after rotation, before head repetition) are
    /// appended to layer <paramref name="layerIndex"/> of it and attention runs over all cached positions. The LoRA
    /// modules of <paramref name="lora"/> that target this layer's projections are applied functionally.
    /// </summary>
    public Tensor Forward(
        Tensor x, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache, int layerIndex, AttentionImplementation implementation, LoraSet? lora = null)
    {
        using var scope = NewDisposeScope();
        Tensor Project(Linear linear, string name, Tensor input) =>
            LoraLinear.Apply(input, linear, lora?.Get(LoraTarget.Path(layerIndex, name)), lora?.Dropout ?? 0, training, lora?.RowsPerAdapter ?? 1);
        var (batch, length) = (x.shape[0], x.shape[1]);
        var q = Project(q_proj, "q_proj", x).view(batch, length, heads, headDim).transpose(1, 2);
        var k = Project(k_proj, "k_proj", x).view(batch, length, kvHeads, headDim).transpose(1, 2);
        var v = Project(v_proj, "v_proj", x).view(batch, length, kvHeads, headDim).transpose(1, 2);
        q = Qwen2RotaryEmbedding.Apply(q, cos, sin);
        k = Qwen2RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null)
            (k, v) = cache.Append(layerIndex, k, v);
        var group = heads / kvHeads;
        if (group > 1)
        {
            k = k.repeat_interleave(group, dim: 1);
            v = v.repeat_interleave(group, dim: 1);
        }
        var attended = implementation switch
        {
            AttentionImplementation.Sdpa => nn.functional.scaled_dot_product_attention(q, k, v, mask, is_casual: mask is null),
            _ => Eager(q, k, v, mask),
        };
        var merged = attended.transpose(1, 2).reshape(batch, length, heads * headDim);
        return Project(o_proj, "o_proj", merged).MoveToOuterDisposeScope();
    }

    Tensor Eager(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        using var root = Math.Sqrt(headDim).ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)) / root;
        if (mask is null)
        {
            var (lq, lk) = (scores.shape[^2], scores.shape[^1]);
            var causal = ones(lq, lk, dtype: ScalarType.Bool, device: q.device).tril(lk - lq);
            using var minusInfinity = double.NegativeInfinity.ToScalar();
            scores = scores.masked_fill(causal.logical_not(), minusInfinity);
        }
        else
        {
            scores = scores.add(mask, OwnedScalars.One);
        }
        var probabilities = scores.to_type(ScalarType.Float32).softmax(-1).to_type(q.dtype);
        return probabilities.matmul(v);
    }
}
