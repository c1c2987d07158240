using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// Turns LoRA sets into grids of LoRA tokens and back, following a <see cref="LoraTokenLayout"/> (the scheme of
/// Drag-and-Drop LLMs: A and Bᵀ of each module cut along the feature axis into fixed-width chunks, each chunk
/// z-normalised with its mean and standard deviation kept as two extra channels).
/// <para>
/// Tokenising a chunk with real values x₁ … xₙ (n ≤ W; padding excluded) stores μ = Σxᵢ / n, σ = √(Σ(xᵢ − μ)² / n)
/// (the population standard deviation) and zᵢ = (xᵢ − μ) / σ. A constant chunk (every real value equal, such as a row of
/// a freshly initialised B = 0) stores that value itself as μ, σ = 0 and zᵢ = 0, so it too comes back exactly; its
/// mean's gradient goes to the chunk's first value. Padding entries hold the pad value (0 unless asked otherwise) and
/// are false in the mask.
/// </para>
/// <para>
/// Detokenising uses the stored channels as they are: xᵢ = zᵢ · σ + μ with whatever σ and μ the grid holds (a
/// generator's output may hold any number there, a negative σ included); nothing is re-normalised. Padding entries are
/// ignored, whatever they hold (NaN included), and receive zero gradient.
/// </para>
/// Both directions are differentiable (tokenising is safe at σ = 0: the gradient there is finite) and work on single
/// sets (grid [T, C]) and on batched sets of N adapters (grid [N, T, C]); the grid has the set's dtype and device.
/// </summary>
public sealed class LoraTokenizer
{
    /// <summary>A tokenizer for <paramref name="layout"/>.</summary>
    public LoraTokenizer(LoraTokenLayout layout) => Layout = layout;

    /// <summary>The layout of the grids.</summary>
    public LoraTokenLayout Layout { get; }

    /// <summary>
    /// The grid [T, C] (or [N, T, C] for a batched set) of <paramref name="set"/>, and a boolean mask of the grid's shape
    /// (a broadcast view of <see cref="LoraTokenLayout.Mask"/>), true where an entry carries information. Padding
    /// entries hold <paramref name="padValue"/>: 0 by default, which keeps losses over the whole grid finite;
    /// <see cref="double.NaN"/> marks padding in the grid itself, as Drag-and-Drop LLMs does.
    /// </summary>
    /// <exception cref="LlgbmException">The set does not fit the layout (a module missing or extra, dense, of another
    /// rank, shape or scale, or batched modules mixed with single ones); the message lists every offending module.</exception>
    public (Tensor Grid, Tensor Mask) Tokenize(LoraSet set, double padValue = 0, string source = "LoRA set")
    {
        var lead = Check(set, source);
        var width = Layout.ChunkWidth;
        using var scope = NewDisposeScope();
        var pieces = new List<Tensor>(Layout.Blocks.Count);
        foreach (var block in Layout.Blocks)
        {
            var module = set.Get(block.Path)!;
            var factor = block.Factor == LoraFactor.A ? module.A! : module.B!.transpose(-1, -2);
            var padded = block.Padding > 0 ? nn.functional.pad(factor, [0, block.Padding]) : factor;
            pieces.Add(padded.reshape([.. lead, block.Tokens, width]));
        }
        var values = cat(pieces, -2);
        var mask = Layout.Mask(values.device);
        var padding = mask.narrow(1, 0, width).logical_not();
        var counts = tensor(Layout.ValueCounts(), dtype: values.dtype, device: values.device).unsqueeze(1);

        using var zero = 0.ToScalar();
        using var one = 1.ToScalar();
        var first = values.narrow(-1, 0, 1);
        Tensor constant;
        using (no_grad())
            constant = (values - first).abs().masked_fill(padding, zero).amax([-1], keepdim: true).eq(zero);
        // Padding is zero here, so the sum covers the real values only.
        var mean = where(constant, first, values.sum(-1, keepdim: true) / counts);
        var centred = (values - mean).masked_fill(padding, zero);
        var variance = centred.pow(OwnedScalars.Two).sum(-1, keepdim: true) / counts;
        var spread = variance.gt(zero);
        // The square root only ever sees positive numbers, so its gradient is finite for constant chunks too.
        var std = variance.masked_fill(spread.logical_not(), one).sqrt().masked_fill(spread.logical_not(), zero);
        var normalised = centred / std.masked_fill(spread.logical_not(), one);
        if (padValue != 0)
        {
            using var pad = padValue.ToScalar();
            normalised = normalised.masked_fill(padding, pad);
        }
        var grid = cat([normalised, mean, std], -1);
        var gridMask = lead.Length == 0 ? mask : mask.expand(grid.shape);
        return (grid.MoveToOuterDisposeScope(), gridMask.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The LoRA set a grid [T, C] (or [N, T, C]) encodes: A [r, in] and B [out, r] (or [N, r, in] and [N, out, r]) of
    /// every module of the layout, with the layout's scales and dropout. The set owns its tensors (fresh, in the graph of
    /// <paramref name="grid"/>, so gradients flow back into it); dispose it.
    /// </summary>
    /// <exception cref="LlgbmException">The grid is not [T, C] or [N, T, C] for this layout, or not floating point.</exception>
    public LoraSet Detokenize(Tensor grid, string source = "LoRA token grid")
    {
        var expected = $"[{Layout.Tokens}, {Layout.Channels}] or [N, {Layout.Tokens}, {Layout.Channels}]";
        var found = $"[{string.Join(", ", grid.shape)}]";
        if (grid.dim() is not (2 or 3) || grid.shape[^2] != Layout.Tokens || grid.shape[^1] != Layout.Channels)
            throw new LlgbmException(
                $"{source}: expected a grid of shape {expected} ({Layout.Tokens} tokens of {Layout.ChunkWidth} values + mean, std), found {found}.");
        if (!grid.is_floating_point())
            throw new LlgbmException($"{source}: expected a floating-point grid, found {grid.dtype}.");
        long[] lead = grid.dim() == 3 ? [grid.shape[0]] : [];
        var width = Layout.ChunkWidth;
        var modules = new Dictionary<string, LoraModule>(StringComparer.Ordinal);
        using (var scope = NewDisposeScope())
        {
            var values = grid.narrow(-1, 0, width);
            if (Layout.HasPadding)
            {
                using var zero = 0.ToScalar();
                values = values.masked_fill(Layout.Mask(grid.device).narrow(1, 0, width).logical_not(), zero);
            }
            var restored = (values * grid.narrow(-1, Layout.StdChannel, 1)).add(grid.narrow(-1, Layout.MeanChannel, 1), OwnedScalars.One);
            Tensor Factor(LoraTokenBlock block) =>
                restored.narrow(-2, block.Offset, block.Tokens)
                    .reshape([.. lead, block.Rows, block.ChunksPerRow * width])
                    .narrow(-1, 0, block.Features);
            for (var i = 0; i < Layout.Modules.Count; i++)
            {
                var module = Layout.Modules[i];
                var a = Factor(Layout.Blocks[2 * i]).contiguous();
                var b = Factor(Layout.Blocks[2 * i + 1]).transpose(-1, -2).contiguous();
                modules[module.Path] = LoraModule.LowRank(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope(), module.Scale);
            }
        }
        return new LoraSet(modules, ownsTensors: true, Layout.Dropout);
    }

    // The leading shape of the set's factors ([] or [N]), after checking the set against the layout.
    long[] Check(LoraSet set, string source)
    {
        var problems = new List<string>();
        foreach (var path in set.Modules.Keys.Where(p => Layout.Module(p) is null).Order(StringComparer.Ordinal))
            problems.Add($"{path} is not in the layout");
        foreach (var expected in Layout.Modules)
        {
            if (set.Get(expected.Path) is not { } module)
            {
                problems.Add($"{expected.Path} is missing");
                continue;
            }
            if (module.A is null)
            {
                problems.Add($"{expected.Path} is a dense ΔW; only low-rank modules are tokenised");
                continue;
            }
            var (outFeatures, inFeatures) = module.Shape;
            if (module.Rank != expected.Rank || outFeatures != expected.OutFeatures || inFeatures != expected.InFeatures)
                problems.Add(
                    $"{expected.Path} has rank {module.Rank} on [{outFeatures}, {inFeatures}] but the layout expects rank {expected.Rank} on " +
                    $"[{expected.OutFeatures}, {expected.InFeatures}]");
            else if (Math.Abs(module.Scale - expected.Scale) > 1e-9 * Math.Max(1, Math.Abs(expected.Scale)))
                problems.Add($"{expected.Path} has scale {module.Scale} but the layout expects {expected.Scale}");
        }
        var batched = set.Modules.Values.Select(m => m.IsBatched).Distinct().ToList();
        if (batched.Count > 1)
            problems.Add("batched modules are mixed with single ones");
        else
        {
            var counts = set.Modules.Values.Select(m => m.Count).Distinct().ToList();
            if (counts.Count > 1)
                problems.Add($"batched modules hold different numbers of adapters ({string.Join(", ", counts)})");
        }
        if (problems.Count > 0)
            throw new LlgbmException($"{source} does not fit the LoRA token layout ({Layout}): {string.Join("; ", problems)}.");
        return set.IsBatched ? [set.Count] : [];
    }
}
