using LLGBM.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// A LoRA adapter held outside the model: one <see cref="LoraModule"/> per targeted linear module, keyed by the
/// module's state-dict path (<c>model.layers.3.self_attn.q_proj</c>). It is passed into the forward pass explicitly
/// (<c>ForwardOptions.Lora</c>), so gradients reach whatever produced its tensors. Every key must name a
/// module of the model it is applied to (<see cref="ValidateFor"/>): a key that matches nothing is an error.
/// </summary>
public sealed class LoraSet : IDisposable
{
    readonly Dictionary<string, LoraModule> modules;
    readonly bool ownsTensors;

    // The architecture this set last passed ValidateFor against: the forward pass validates on every call (once per
    // decoding step or training step), and a set's modules never change, so one check per architecture suffices.
    Qwen2Config? validatedFor;

    /// <summary>A set over the given modules; with <paramref name="ownsTensors"/> it disposes them.</summary>
    public LoraSet(IReadOnlyDictionary<string, LoraModule> modules, bool ownsTensors = false, double dropout = 0)
    {
        Dropout = dropout;
        this.modules = new Dictionary<string, LoraModule>(modules, StringComparer.Ordinal);
        this.ownsTensors = ownsTensors;
        foreach (var (path, module) in this.modules)
            module.Validate(path);
    }

    /// <summary>Dropout on the LoRA input while the model is in training mode.</summary>
    public double Dropout { get; }

    /// <summary>
    /// With per-example modules, the consecutive rows of the batch each adapter applies to: 1 (row n uses adapter n), or
    /// k (rows n·k … n·k + k − 1 use adapter n; several teachers trained in one pass). The batch has Count · k rows.
    /// </summary>
    public int RowsPerAdapter { get; init; } = 1;

    /// <summary>The modules by path.</summary>
    public IReadOnlyDictionary<string, LoraModule> Modules => modules;

    /// <summary>The module adapting <paramref name="path"/>, or null.</summary>
    public LoraModule? Get(string path) => modules.GetValueOrDefault(path);

    /// <summary>Per-example adapters in the set (1 when not batched).</summary>
    public long Count => modules.Values.Select(m => m.Count).DefaultIfEmpty(1).Max();

    /// <summary>True when the modules carry a leading per-example dimension.</summary>
    public bool IsBatched => modules.Values.Any(m => m.IsBatched);

    /// <summary>
    /// Fresh trainable factors for <paramref name="config"/> on a model of <paramref name="model"/>'s shape,
    /// initialised as PEFT does (A ~ U(±1/√in), i.e. Kaiming-uniform with a = √5; B = 0), so the adapter starts as an
    /// exact no-op. The set owns its tensors (leaf tensors with gradients).
    /// </summary>
    public static LoraSet Initialize(LoraConfig config, Qwen2Config model, long seed, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        config.Validate(model.NumHiddenLayers);
        using var generator = new Generator((ulong)seed);
        var modules = new Dictionary<string, LoraModule>();
        foreach (var path in config.Paths(model.NumHiddenLayers))
        {
            var (outFeatures, inFeatures) = ShapeOf(model, path);
            var r = config.RankOf(path);
            var bound = 1.0 / Math.Sqrt(inFeatures);
            using var uniform = rand([r, inFeatures], generator: generator);
            using var width = (2 * bound).ToScalar();
            using var low = bound.ToScalar();
            var a = new Parameter((uniform * width - low).to_type(dtype).to(device ?? CPU).DetachFromDisposeScope());
            var b = new Parameter(zeros([outFeatures, r], dtype: dtype, device: device).DetachFromDisposeScope());
            modules[path] = LoraModule.LowRank(a, b, config.ScaleOf(path));
        }
        return new LoraSet(modules, ownsTensors: true, config.Dropout);
    }

    /// <summary>The tensors that are parameters (those of <see cref="Initialize"/>), for optimisers.</summary>
    public IEnumerable<Parameter> Parameters() => Tensors().OfType<Parameter>();

    /// <summary>The trainable tensors (A and B of every low-rank module, ΔW of dense ones).</summary>
    public IEnumerable<Tensor> Tensors() =>
        modules.Values.SelectMany(m => new[] { m.A, m.B, m.Delta }).Where(t => t is not null).Select(t => t!);

    /// <summary>(out, in) of the linear module at <paramref name="path"/> in a model of this architecture.</summary>
    public static (long Out, long In) ShapeOf(Qwen2Config model, string path)
    {
        var (_, module) = LoraTarget.Parse(path) ?? throw new LlgbmException($"LoRA key {path} names no Qwen2 linear module.");
        long h = model.HiddenSize, q = model.NumAttentionHeads * model.HeadDim, kv = model.NumKeyValueHeads * model.HeadDim;
        return module switch
        {
            "q_proj" => (q, h),
            "k_proj" or "v_proj" => (kv, h),
            "o_proj" => (h, q),
            "gate_proj" or "up_proj" => (model.IntermediateSize, h),
            _ => (h, model.IntermediateSize),
        };
    }

    /// <summary>
    /// Checks that every key names a linear module of a model of this architecture, that every module's shape fits
    /// it, and that batched modules agree on the number of adapters; errors list every offending key.
    /// </summary>
    public LoraSet ValidateFor(Qwen2Config model, string source = "LoRA set")
    {
        if (ReferenceEquals(validatedFor, model))
            return this;
        var problems = new List<string>();
        foreach (var (path, module) in modules)
        {
            if (LoraTarget.Parse(path) is not { } target || target.Layer >= model.NumHiddenLayers)
            {
                problems.Add($"{path} matches no module of the model ({model.NumHiddenLayers} layers; keys look like model.layers.0.self_attn.q_proj)");
                continue;
            }
            var expected = ShapeOf(model, path);
            if (module.Shape != expected)
                problems.Add($"{path} is [{module.Shape.Out}, {module.Shape.In}] but the module is [{expected.Out}, {expected.In}]");
        }
        var counts = modules.Values.Where(m => m.IsBatched).Select(m => m.Count).Distinct().ToList();
        if (counts.Count > 1)
            problems.Add($"batched modules hold different numbers of adapters ({string.Join(", ", counts)})");
        if (problems.Count > 0)
            throw new LlgbmException($"{source}: {string.Join("; ", problems)}.");
        validatedFor = model;
        return this;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!ownsTensors)
            return;
        foreach (var t in Tensors())
            t.Dispose();
    }
}
