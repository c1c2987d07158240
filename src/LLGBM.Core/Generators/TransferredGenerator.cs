using LLGBM.Lora;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// One two-stage run's predictor (conditions → δ̂) driving another two-stage run's decoder (δ → LoRA): across backbones,
/// the predictor trained on backbone A's teachers and the decoder on backbone B's, composable when both runs' deltas
/// share their coordinates (the delta meaning of the same text pairs). Generation only; it owns neither generator.
/// </summary>
public sealed class TransferredGenerator(TwoStageGenerator predictor, TwoStageGenerator decoder) : ILoraGenerator
{
    /// <summary>The run whose predictor is used.</summary>
    public TwoStageGenerator Predictor { get; } = Check(predictor, decoder);

    /// <summary>The run whose decoder is used.</summary>
    public TwoStageGenerator Decoder { get; } = decoder;

    static TwoStageGenerator Check(TwoStageGenerator predictor, TwoStageGenerator decoder) =>
        predictor.DeltaDim == decoder.DeltaDim
            ? predictor
            : throw new LlgbmException($"Transfer: the predictor emits deltas of width {predictor.DeltaDim}, the decoder reads deltas of width {decoder.DeltaDim}.");

    /// <inheritdoc/>
    public LoraConfig Lora => Decoder.Lora;

    /// <inheritdoc/>
    public int ConditionDim => Predictor.ConditionDim;

    /// <inheritdoc/>
    public LoraSet Generate(Tensor conditions)
    {
        using var scope = NewDisposeScope();
        var set = Decoder.Decode(Predictor.PredictDelta(conditions));
        foreach (var t in set.Tensors())
            t.MoveToOuterDisposeScope();
        return set;
    }

    /// <inheritdoc/>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters() =>
        Predictor.NamedParameters().Select(p => ("predictor." + p.Name, p.Parameter))
            .Concat(Decoder.NamedParameters().Select(p => ("decoder." + p.Name, p.Parameter)));

    /// <summary>Not supported: each part keeps the statistics of its own run.</summary>
    public void SetConditionStatistics(Tensor mean, Tensor std) =>
        throw new LlgbmException("Transfer: the predictor keeps its own run's condition statistics.");

    /// <inheritdoc/>
    public void SetTraining(bool training)
    {
        Predictor.SetTraining(training);
        Decoder.SetTraining(training);
    }

    /// <summary>Disposes nothing: the two generators belong to the caller.</summary>
    public void Dispose() { }
}
