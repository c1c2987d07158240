using LLGBM.Lora;
using LLGBM.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A Drag-and-Drop-LLMs-style cascaded hyper-convolutional decoder (Liang et al., "Drag-and-Drop LLMs", arXiv
/// 2506.16406): the condition's K encodings, standardised with the training conditions' statistics, form a
/// [K channels × D width] map; each block convolves along the width (kernel 3) while mapping the channels, then maps
/// the width linearly, with layer norm and GELU between blocks; the last block lands on the LoRA-token grid
/// [T tokens × (W + 2)] of <see cref="LoraTokenLayout"/> (W values, the chunk's mean and std), to which an output bias
/// holding the tokens of an initial LoRA (PEFT's: A Kaiming-uniform, B = 0) is added. <see cref="LoraTokenizer.Detokenize"/>
/// turns the grid into the adapter, differentiably. K is fixed by the config (the channels of the first block).
/// </summary>
public sealed class HyperConvGenerator : LoraGenerator
{
    readonly LoraTokenizer tokenizer;

    /// <summary>Per-feature mean of the training conditions' encodings [D] (a buffer).</summary>
    public readonly Tensor condition_mean;

    /// <summary>Per-feature standard deviation of the training conditions' encodings [D] (a buffer).</summary>
    public readonly Tensor condition_std;

    /// <summary>Channel-mapping convolutions along the width, one per block.</summary>
    public readonly ModuleList<Conv1d> convs;

    /// <summary>Width maps, one per block.</summary>
    public readonly ModuleList<Linear> widths;

    /// <summary>Layer norms between blocks.</summary>
    public readonly ModuleList<LayerNorm> norms;

    /// <summary>The tokens of the initial LoRA [T, W + 2].</summary>
    public readonly Parameter output_bias;

    /// <summary>A decoder for <paramref name="lora"/> adapters of <paramref name="model"/>, K = <see cref="GeneratorConfig.ConditionPrompts"/> encodings of
    /// width <paramref name="conditionDim"/>.</summary>
    public HyperConvGenerator(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, long seed, Device? device = null)
        : base(nameof(HyperConvGenerator))
    {
        config.Validate();
        Lora = lora;
        ConditionDim = conditionDim;
        Prompts = config.ConditionPrompts;
        Layout = LoraTokenLayout.For(model, lora, config.TokenWidth);
        tokenizer = new LoraTokenizer(Layout);
        var shapes = new List<(int Channels, int Width)> { (config.ConditionPrompts, conditionDim) };
        shapes.AddRange(config.ConvBlocks.Select(b => (b[0], b[1])));
        shapes.Add(((int)Layout.Tokens, Layout.Channels));
        using (var _ = no_grad())
        {
            manual_seed(seed);
            condition_mean = zeros(conditionDim);
            condition_std = ones(conditionDim);
            convs = new ModuleList<Conv1d>([.. shapes.Zip(shapes.Skip(1), (a, b) => nn.Conv1d(a.Channels, b.Channels, 3, padding: 1))]);
            widths = new ModuleList<Linear>([.. shapes.Zip(shapes.Skip(1), (a, b) => nn.Linear(a.Width, b.Width))]);
            norms = new ModuleList<LayerNorm>([.. shapes.Skip(1).SkipLast(1).Select(s => nn.LayerNorm(s.Width))]);
            var last = widths[^1];
            using var headScale = config.HeadInitScale.ToScalar();
            last.weight!.mul_(headScale);
            last.bias!.zero_();
            convs[^1].weight!.mul_(headScale);
            using var initial = LoraSet.Initialize(lora, model, seed);
            var (grid, mask) = tokenizer.Tokenize(initial);
            output_bias = new Parameter(grid.detach().clone());
            grid.Dispose();
            mask.Dispose();
        }
        RegisterComponents();
        if (device is not null)
            this.to(device);
    }

    /// <inheritdoc/>
    public override LoraConfig Lora { get; }

    /// <inheritdoc/>
    public override int ConditionDim { get; }

    /// <summary>K, the number of encodings a condition must hold.</summary>
    public int Prompts { get; }

    /// <summary>The token grid's layout.</summary>
    public LoraTokenLayout Layout { get; }

    /// <summary>The tokenizer of <see cref="Layout"/> (for the token-level weight loss).</summary>
    public LoraTokenizer Tokenizer => tokenizer;

    /// <summary>Sets the standardisation of the encodings.</summary>
    public override void SetConditionStatistics(Tensor mean, Tensor std)
    {
        using var _ = no_grad();
        condition_mean.copy_(mean);
        using var floor = 1e-6.ToScalar();
        condition_std.copy_(std.clamp_min(floor));
    }

    /// <summary>The token grids [N, T, W + 2] of <paramref name="conditions"/> [N, K, D].</summary>
    public Tensor GenerateGrid(Tensor conditions)
    {
        if (conditions.dim() != 3 || conditions.shape[1] != Prompts || conditions.shape[2] != ConditionDim)
            throw new LlgbmException(
                $"HyperConv generator: conditions must be [N, {Prompts}, {ConditionDim}] (K fixed by condition_prompts), " +
                $"found [{string.Join(", ", conditions.shape)}].");
        using var scope = NewDisposeScope();
        var x = (conditions - condition_mean) / condition_std;
        for (var i = 0; i < convs.Count; i++)
        {
            x = widths[i].forward(convs[i].forward(x));
            if (i < norms.Count)
                x = nn.functional.gelu(norms[i].forward(x));
        }
        return x.add(output_bias, OwnedScalars.One).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override LoraSet Generate(Tensor conditions)
    {
        using var scope = NewDisposeScope();
        var grid = GenerateGrid(conditions);
        var set = tokenizer.Detokenize(grid);
        foreach (var t in set.Tensors())
            t.MoveToOuterDisposeScope();
        return set;
    }

    /// <summary>
    /// With the token-level weight loss (Drag-and-Drop LLMs' objective), the loss between the generated token grid and
    /// the teachers' (padding excluded) and the adapters of the grid; otherwise the default step.
    /// </summary>
    public override GeneratorStep TrainingStep(GeneratorStepInput input)
    {
        if (input.Config.WeightLoss != WeightLossKind.Tokens)
            return base.TrainingStep(input);
        var grid = GenerateGrid(input.Conditions);
        var (teacherGrid, mask) = tokenizer.Tokenize(input.Teacher);
        var tokenLoss = WeightLosses.Tokens(grid, teacherGrid, mask);
        return new GeneratorStep(tokenizer.Detokenize(grid), TokenLoss: tokenLoss);
    }
}
