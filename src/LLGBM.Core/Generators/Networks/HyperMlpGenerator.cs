using LLGBM.Lora;
using LLGBM.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A Text-to-LoRA-style hyper-network (Charakorn et al., "Text-to-LoRA", arXiv 2506.06105): the condition's K
/// encodings are standardised with the training conditions' statistics and mean-pooled, projected to E; for every
/// module, the projection is concatenated with a learned embedding of the module's layer and one of its type, and a
/// shared MLP trunk maps the result to H features; a head per module type (and rank) maps those to the flattened A and
/// B of the module, plus an output bias per module that is initialised from an initial LoRA (PEFT's: A
/// Kaiming-uniform, B = 0), so that an untrained generator emits near no-op adapters close to it.
/// </summary>
public sealed class HyperMlpGenerator : LoraGenerator
{
    readonly IReadOnlyList<LoraModuleSlot> slots;
    readonly IReadOnlyList<(string Key, int[] Slots)> groups;

    /// <summary>Per-feature mean of the training conditions' encodings [D] (a buffer; 0 until set).</summary>
    public readonly Tensor condition_mean;

    /// <summary>Per-feature standard deviation of the training conditions' encodings [D] (a buffer; 1 until set).</summary>
    public readonly Tensor condition_std;

    /// <summary>D → E projection of the pooled condition.</summary>
    public readonly Linear condition_proj;

    /// <summary>Layer embeddings [layers, E].</summary>
    public readonly Parameter layer_embedding;

    /// <summary>Module-type embeddings [types, E] (in the order of <see cref="LoraTarget.All"/>).</summary>
    public readonly Parameter module_embedding;

    /// <summary>The shared trunk: 3E → H, then H → H, each followed by GELU.</summary>
    public readonly ModuleList<Linear> trunk;

    /// <summary>One head per module type and rank: H → r · (in + out).</summary>
    public readonly ModuleDict<Linear> heads;

    /// <summary>Per-module output biases, one [modules of the group, r · (in + out)] tensor per head.</summary>
    public readonly ParameterDict biases;

    /// <summary>
    /// A generator of <paramref name="lora"/> adapters for a model of <paramref name="model"/>'s shape, reading
    /// conditions of width <paramref name="conditionDim"/>; initialised with <paramref name="seed"/>.
    /// </summary>
    public HyperMlpGenerator(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, long seed, Device? device = null)
        : base(nameof(HyperMlpGenerator))
    {
        config.Validate();
        Lora = lora;
        ConditionDim = conditionDim;
        slots = LoraModuleSlot.Of(lora, model);
        groups = [.. slots.Select((s, i) => (s, i)).GroupBy(p => $"{p.s.Module}_r{p.s.Rank}").Select(g => (g.Key, g.Select(p => p.i).ToArray()))];
        var e = config.EmbeddingSize;
        var h = config.HiddenSize;
        using var generator = new Generator((ulong)seed);
        using (var _ = no_grad())
        {
            manual_seed(seed);
            condition_mean = zeros(conditionDim);
            condition_std = ones(conditionDim);
            condition_proj = nn.Linear(conditionDim, e);
            using var embeddingScale = 0.1.ToScalar();
            layer_embedding = new Parameter(randn([model.NumHiddenLayers, e], generator: generator) * embeddingScale);
            module_embedding = new Parameter(randn([LoraTarget.All.Count, e], generator: generator) * embeddingScale);
            trunk = new ModuleList<Linear>([.. Enumerable.Range(0, config.Depth).Select(i => nn.Linear(i == 0 ? 3 * e : h, h))]);
            heads = new ModuleDict<Linear>();
            biases = new ParameterDict();
            foreach (var (key, members) in groups)
            {
                var first = slots[members[0]];
                var head = nn.Linear(h, first.FactorSize, hasBias: false);
                using var headScale = config.HeadInitScale.ToScalar();
                head.weight!.mul_(headScale);
                heads.Add(key, head);
                var initial = zeros(members.Length, first.FactorSize);
                var bound = 1.0 / Math.Sqrt(first.In);
                var aSize = first.Rank * first.In;
                using var width = (2 * bound).ToScalar();
                using var low = bound.ToScalar();
                initial[TensorIndex.Colon, TensorIndex.Slice(0, aSize)] = rand([members.Length, aSize], generator: generator) * width - low;
                biases.Add(key, new Parameter(initial));
            }
        }
        // Registers the layers and parameters, and the two condition statistics as (persistent) buffers.
        RegisterComponents();
        if (device is not null)
            this.to(device);
    }

    /// <inheritdoc/>
    public override LoraConfig Lora { get; }

    /// <inheritdoc/>
    public override int ConditionDim { get; }

    /// <summary>The modules the generator emits, in order.</summary>
    public IReadOnlyList<LoraModuleSlot> Slots => slots;

    /// <summary>Sets the standardisation of the encodings (the training conditions' per-feature mean and std).</summary>
    public override void SetConditionStatistics(Tensor mean, Tensor std)
    {
        using var _ = no_grad();
        condition_mean.copy_(mean);
        using var floor = 1e-6.ToScalar();
        condition_std.copy_(std.clamp_min(floor));
    }

    /// <inheritdoc/>
    public override LoraSet Generate(Tensor conditions)
    {
        if (conditions.dim() != 3 || conditions.shape[2] != ConditionDim)
            throw new LlgbmException($"HyperMLP generator: conditions must be [N, K, {ConditionDim}], found [{string.Join(", ", conditions.shape)}].");
        var modules = new Dictionary<string, LoraModule>();
        using (var scope = NewDisposeScope())
        {
            var n = conditions.shape[0];
            var pooled = ((conditions - condition_mean) / condition_std).mean([1]);
            var z = condition_proj.forward(pooled);
            foreach (var (key, members) in groups)
            {
                var first = slots[members[0]];
                var layerIds = tensor(members.Select(i => (long)slots[i].Layer).ToArray(), device: z.device);
                var typeId = LoraTarget.All.ToList().IndexOf(first.Module);
                var s = members.Length;
                var input = cat([
                    z.unsqueeze(1).expand(n, s, -1),
                    layer_embedding.index_select(0, layerIds).unsqueeze(0).expand(n, -1, -1),
                    module_embedding[typeId].view(1, 1, -1).expand(n, s, -1),
                ], 2);
                var hidden = input;
                foreach (var layer in trunk)
                    hidden = nn.functional.gelu(layer.forward(hidden));
                var flat = heads[key].forward(hidden).add(biases[key].unsqueeze(0), OwnedScalars.One);
                var aSize = first.Rank * first.In;
                for (var j = 0; j < s; j++)
                {
                    var slot = slots[members[j]];
                    var a = flat[TensorIndex.Colon, j, TensorIndex.Slice(0, aSize)].reshape(n, slot.Rank, slot.In);
                    var b = flat[TensorIndex.Colon, j, TensorIndex.Slice(aSize, null)].reshape(n, slot.Out, slot.Rank);
                    modules[slot.Path] = LoraModule.LowRank(a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope(), slot.Scale);
                }
            }
        }
        return new LoraSet(modules, ownsTensors: true);
    }
}
