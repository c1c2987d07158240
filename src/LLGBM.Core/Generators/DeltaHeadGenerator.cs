using LLGBM.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A generator trained with a learned delta head (<see cref="DeltaHead"/>) in place of the exact delta embedder: the
/// wrapped network generates the adapters, the head predicts their deltas cheaply. Generation is the wrapped network's.
/// </summary>
public sealed class DeltaHeadGenerator : nn.Module, ILoraGenerator
{
    /// <summary>The network that generates the adapters.</summary>
    public readonly nn.Module network;

    /// <summary>The learned delta head.</summary>
    public readonly DeltaHead delta_head;

    readonly ILoraGenerator inner;

    /// <summary>Wraps <paramref name="generator"/> (a module) with a head to deltas of width <paramref name="deltaDim"/>.</summary>
    public DeltaHeadGenerator(ILoraGenerator generator, Model.Qwen2Config model, int deltaDim, long seed, Device? device = null)
        : base(nameof(DeltaHeadGenerator))
    {
        inner = generator;
        network = generator as nn.Module ?? throw new LlgbmException("Delta-head generator: the wrapped generator must be a module.");
        var paths = generator.Lora.Paths(model.NumHiddenLayers);
        var inputs = LoraModuleSlot.Of(generator.Lora, model).Sum(s => s.FactorSize);
        delta_head = new DeltaHead(paths, inputs, deltaDim, seed);
        RegisterComponents();
        if (device is not null)
            this.to(device);
    }

    /// <summary>The head.</summary>
    public DeltaHead Head => delta_head;

    /// <inheritdoc/>
    public LoraConfig Lora => inner.Lora;

    /// <inheritdoc/>
    public int ConditionDim => inner.ConditionDim;

    /// <inheritdoc/>
    public LoraSet Generate(Tensor conditions) => inner.Generate(conditions);

    /// <inheritdoc/>
    public void SetConditionStatistics(Tensor mean, Tensor std) => inner.SetConditionStatistics(mean, std);

    /// <inheritdoc/>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters() => named_parameters();

    /// <inheritdoc/>
    public void SetTraining(bool training) => train(training);
}
