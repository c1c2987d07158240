using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A hyper-network that turns conditions into LoRA adapters in one forward pass. A condition is the encoding of a
/// batch of K prompts of a task, [K, D]; <see cref="Generate"/> takes N of them, [N, K, D], and returns a batched
/// <see cref="LoraSet"/> (A [N, r, in], B [N, out, r] per module) for the functional forward, differentiable with
/// respect to the generator's parameters. The set owns its tensors. Parameters, training mode and disposal are the
/// module's; what a variant adds to training it says through <see cref="TrainingStep"/> and
/// <see cref="FitStatistics"/>, so the trainer and the runs never name a concrete generator.
/// </summary>
public abstract class LoraGenerator(string name) : nn.Module(name)
{
    /// <summary>The LoRA shape the generator emits (targets, ranks, scales).</summary>
    public abstract LoraConfig Lora { get; }

    /// <summary>D, the width of one encoded prompt.</summary>
    public abstract int ConditionDim { get; }

    /// <summary>The adapters of <paramref name="conditions"/> [N, K, D].</summary>
    public abstract LoraSet Generate(Tensor conditions);

    /// <summary>The generator's delta stages (condition → δ̂ → adapters) when it goes through a delta; otherwise null.</summary>
    public virtual IDeltaStages? DeltaStages => null;

    /// <summary>Sets the per-feature standardisation of the encodings (the training conditions' mean and std, [D] each).</summary>
    public abstract void SetConditionStatistics(Tensor mean, Tensor std);

    /// <summary>
    /// Sets what the generator standardises with from its training data before training starts: the training
    /// conditions' per-feature mean and std, and whatever else a variant needs (the two-stage decoder's delta
    /// statistics).
    /// </summary>
    public virtual void FitStatistics(GeneratorData data)
    {
        var (mean, std) = data.ConditionStatistics();
        using (mean)
        using (std)
            SetConditionStatistics(mean, std);
    }

    /// <summary>
    /// The generator's part of one training microbatch: the adapters the objective compares with the teachers, and
    /// what the generator adds to it. By default the adapters of the conditions and nothing else; the token-level
    /// weight loss needs a generator that emits token grids.
    /// </summary>
    public virtual GeneratorStep TrainingStep(GeneratorStepInput input)
    {
        if (input.Config.WeightLoss == WeightLossKind.Tokens)
            throw new LlgbmException($"Generator config: weight_loss Tokens needs the HyperConv architecture (found {input.Config.Architecture}).");
        return new GeneratorStep(Generate(input.Conditions));
    }
}
