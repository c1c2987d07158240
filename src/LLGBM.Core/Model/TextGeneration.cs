using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>Batched autoregressive decoding with a KV cache: greedy or sampled, with stop tokens.</summary>
public static class TextGeneration
{
    /// <summary>
    /// Continues each prompt (token ids) and returns the new tokens of each, without the stop token. Prompts of
    /// unequal length are left-padded into one batch; each row stops at its first stop token or after
    /// <see cref="GenerationOptions.MaxNewTokens"/> tokens. Non-finite logits stop the decoding with a
    /// <see cref="NonFiniteException"/> naming the step.
    /// </summary>
    public static int[][] Generate(Qwen2ForCausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions? options = null) =>
        Generate(model.Forward, model.Config.NumHiddenLayers, model.Device, prompts, options);

    /// <summary>
    /// As <see cref="Generate(Qwen2ForCausalLM, IReadOnlyList{IReadOnlyList{int}}, GenerationOptions?)"/>, with the
    /// model given as its forward pass (a <see cref="Qwen2ForCausalLM.Forward"/> or anything that behaves like one,
    /// such as a model with an adapter applied), its number of layers (for the KV cache) and its device.
    /// </summary>
    public static int[][] Generate(
        Func<Tensor, ForwardOptions, Qwen2Output> forward, int layers, Device device, IReadOnlyList<IReadOnlyList<int>> prompts,
        GenerationOptions? options = null)
    {
        options ??= new GenerationOptions();
        if (prompts.Count == 0)
            return [];
        for (var i = 0; i < prompts.Count; i++)
            if (prompts[i].Count == 0)
                throw new LlgbmException($"Generate: prompt {i} is empty; every prompt needs at least one token.");
        if (options.Temperature < 0 || options.TopK < 0 || options.TopP is <= 0 or > 1)
            throw new LlgbmException(
                $"Generate: expected temperature ≥ 0, top-k ≥ 0 and 0 < top-p ≤ 1, found {options.Temperature}, {options.TopK}, {options.TopP}.");

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (ids, mask) = LeftPad(prompts, options.PadTokenId, device);
        var batch = prompts.Count;
        var results = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var finished = new bool[batch];
        var stop = options.StopTokens.ToHashSet();
        var generator = options.Temperature > 0 ? new Generator((ulong)options.Seed, device: device.type == DeviceType.CUDA ? device : null) : null;

        using var cache = new KvCache(layers);
        var input = ids;
        for (var step = 0; step < options.MaxNewTokens; step++)
        {
            using var stepScope = NewDisposeScope();
            using var output = forward(input, new ForwardOptions
            {
                AttentionMask = mask,
                Cache = cache,
                Logits = LogitPositions.Last,
                Attention = options.Attention,
            });
            var logits = output.Logits![TensorIndex.Colon, -1];
            FiniteCheck.Tensor(logits, $"Generate: the next-token logits of step {step}");
            var next = Pick(logits, options, generator);
            var chosen = next.cpu().data<long>().ToArray();
            for (var b = 0; b < batch; b++)
            {
                if (finished[b])
                    continue;
                if (stop.Contains((int)chosen[b]))
                    finished[b] = true;
                else
                    results[b].Add((int)chosen[b]);
            }
            if (finished.All(f => f))
                break;
            input = next.view(batch, 1).MoveToOuterDisposeScope();
            mask = cat([mask, ones(batch, 1, dtype: ScalarType.Int64, device: device)], dim: 1).MoveToOuterDisposeScope();
        }
        return results.Select(r => r.ToArray()).ToArray();
    }

    /// <summary>Left-pads token lists into ids [B, T] and a padding mask [B, T] (1 = real token).</summary>
    public static (Tensor Ids, Tensor Mask) LeftPad(IReadOnlyList<IReadOnlyList<int>> sequences, int padTokenId, Device? device = null)
    {
        var length = sequences.Max(s => s.Count);
        var ids = new long[sequences.Count * length];
        var mask = new long[sequences.Count * length];
        for (var b = 0; b < sequences.Count; b++)
        {
            var offset = length - sequences[b].Count;
            for (var t = 0; t < length; t++)
            {
                var real = t >= offset;
                ids[b * length + t] = real ? sequences[b][t - offset] : padTokenId;
                mask[b * length + t] = real ? 1 : 0;
            }
        }
        long[] shape = [sequences.Count, length];
        return (tensor(ids, shape, device: device), tensor(mask, shape, device: device));
    }

    static Tensor Pick(Tensor logits, GenerationOptions options, Generator? generator)
    {
        using var scope = NewDisposeScope();
        if (options.Temperature == 0)
            return logits.argmax(-1).MoveToOuterDisposeScope();
        using var temperature = options.Temperature.ToScalar();
        using var minusInfinity = double.NegativeInfinity.ToScalar();
        var scaled = logits.to_type(ScalarType.Float32) / temperature;
        if (options.TopK > 0 && options.TopK < scaled.shape[^1])
        {
            var kth = scaled.topk(options.TopK, dim: -1).values[TensorIndex.Colon, TensorIndex.Slice(-1)];
            scaled = scaled.masked_fill(scaled.lt(kth), minusInfinity);
        }
        if (options.TopP < 1.0)
        {
            var (sorted, order) = scaled.sort(-1, descending: true);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            // Drop a token when the tokens ranked above it already reach top-p; the most likely token always stays.
            using var topP = options.TopP.ToScalar();
            var drop = (cumulative - sorted.softmax(-1)).gt(topP);
            var dropInVocabOrder = zeros_like(drop).scatter(-1, order, drop);
            scaled = scaled.masked_fill(dropInVocabOrder, minusInfinity);
        }
        return scaled.softmax(-1).multinomial(1, generator: generator).squeeze(-1).MoveToOuterDisposeScope();
    }
}
