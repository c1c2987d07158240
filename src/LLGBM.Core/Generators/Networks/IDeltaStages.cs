using LLGBM.Lora;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A generator that goes through a delta: conditions → δ̂ → adapters (the two-stage generator). Experiments that
/// compose in delta space (mixtures, transfer) use the two halves apart.
/// </summary>
public interface IDeltaStages
{
    /// <summary>The width of the deltas predicted and decoded.</summary>
    int DeltaDim { get; }

    /// <summary>δ̂ of each condition [N, K, D] → [N, delta width].</summary>
    Tensor PredictDelta(Tensor conditions);

    /// <summary>The adapters of deltas [N, delta width] (batched, owning its tensors).</summary>
    LoraSet Decode(Tensor deltas);
}
