using LLGBM.Lora;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A hyper-network that turns conditions into LoRA adapters in one forward pass. A condition is the encoding of a
/// batch of K prompts of a task, [K, D]; <see cref="Generate"/> takes N of them, [N, K, D], and returns a batched
/// <see cref="LoraSet"/> (A [N, r, in], B [N, out, r] per module) for the functional forward, differentiable with
/// respect to the generator's parameters. The set owns its tensors.
/// </summary>
public interface ILoraGenerator : IDisposable
{
    /// <summary>The LoRA shape the generator emits (targets, ranks, scales).</summary>
    LoraConfig Lora { get; }

    /// <summary>D, the width of one encoded prompt.</summary>
    int ConditionDim { get; }

    /// <summary>The adapters of <paramref name="conditions"/> [N, K, D].</summary>
    LoraSet Generate(Tensor conditions);

    /// <summary>The trainable parameters, by name (for optimisers and checkpoints).</summary>
    IEnumerable<(string Name, Parameter Parameter)> NamedParameters();

    /// <summary>Sets the per-feature standardisation of the encodings (the training conditions' mean and std, [D] each).</summary>
    void SetConditionStatistics(Tensor mean, Tensor std);

    /// <summary>Switches dropout and similar behaviour between training and evaluation.</summary>
    void SetTraining(bool training);
}
