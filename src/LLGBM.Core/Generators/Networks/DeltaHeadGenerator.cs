using LLGBM.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A generator trained with a learned delta head (<see cref="DeltaHead"/>) in place of the exact delta embedder: the
/// wrapped network generates the adapters, the head predicts their deltas cheaply. Generation is the wrapped network's.
/// </summary>
public sealed class DeltaHeadGenerator : LoraGenerator
{
    /// <summary>The network that generates the adapters.</summary>
    public readonly LoraGenerator network;

    /// <summary>The learned delta head.</summary>
    public readonly DeltaHead delta_head;

    /// <summary>Wraps <paramref name="generator"/> with a head to deltas of width <paramref name="deltaDim"/>.</summary>
    public DeltaHeadGenerator(LoraGenerator generator, Model.Qwen2Config model, int deltaDim, long seed, Device? device = null)
        : base(nameof(DeltaHeadGenerator))
    {
        network = generator;
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
    public override LoraConfig Lora => network.Lora;

    /// <inheritdoc/>
    public override int ConditionDim => network.ConditionDim;

    /// <inheritdoc/>
    public override LoraSet Generate(Tensor conditions) => network.Generate(conditions);

    /// <inheritdoc/>
    public override void SetConditionStatistics(Tensor mean, Tensor std) => network.SetConditionStatistics(mean, std);

    /// <summary>
    /// The head learns the teachers' deltas from their weights (the auxiliary loss, relative MSE); the generated
    /// adapters' delta term goes through the head, frozen, instead of the base model.
    /// </summary>
    public override GeneratorStep TrainingStep(GeneratorStepInput input)
    {
        if (input.Config.WeightLoss == WeightLossKind.Tokens)
            return base.TrainingStep(input);
        var generated = Generate(input.Conditions);
        using var target = input.TeacherDeltas();
        var auxiliary = GeneratorTrainer.DeltaTerm(DeltaLossKind.RelativeMse, delta_head.forward(input.Teacher), target);
        return new GeneratorStep(generated, Auxiliary: auxiliary, DeltaOf: delta_head.Frozen);
    }
}
