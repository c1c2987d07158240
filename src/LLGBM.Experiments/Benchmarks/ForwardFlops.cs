using LLGBM.Model;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>Floating-point operations of one Qwen2 forward pass, counted as 2 per multiply-add.</summary>
public static class ForwardFlops
{
    /// <summary>
    /// FLOPs of a forward pass over <paramref name="batch"/> sequences of <paramref name="length"/> tokens with logits
    /// at <paramref name="logitPositions"/> positions per sequence: the linear projections (2 · weights per token),
    /// causal attention (q·k and p·v over the visible keys: 2 · 2 · nH · hd · T(T+1)/2 per layer and sequence) and
    /// the vocabulary head. Norms, rotary and softmax are not counted.
    /// </summary>
    public static double Count(Qwen2Config c, long batch, long length, long logitPositions)
    {
        double h = c.HiddenSize, hd = c.HeadDim, q = c.NumAttentionHeads * hd, kv = c.NumKeyValueHeads * hd;
        var projectionWeights = h * q + 2 * h * kv + q * h + 3 * h * c.IntermediateSize;
        var projections = 2.0 * projectionWeights * c.NumHiddenLayers * batch * length;
        var attention = 2.0 * 2.0 * q * (length * (length + 1) / 2.0) * c.NumHiddenLayers * batch;
        var head = 2.0 * h * c.VocabSize * batch * logitPositions;
        return projections + attention + head;
    }
}
