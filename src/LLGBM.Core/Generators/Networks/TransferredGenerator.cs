using LLGBM.Lora;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// One two-stage run's predictor (conditions → δ̂) driving another two-stage run's decoder (δ → LoRA): across backbones,
/// the predictor trained on backbone A's teachers and the decoder on backbone B's, composable when both runs' deltas
/// share their coordinates (the delta meaning of the same text pairs). With <paramref name="standardize"/>, δ̂ is moved
/// from the predictor run's scale to the decoder run's coordinate by coordinate before decoding: standardised with the
/// predictor run's training-teacher delta mean and std, then scaled back with the decoder run's,
/// δ = μ_B + σ_B ⊙ (δ̂_A − μ_A) / σ_A, since one task's log-probability shifts need not be of one size on two
/// backbones. Generation only: it owns neither generator and registers neither as a submodule (it has no parameters
/// of its own and disposing it leaves both alone).
/// </summary>
public sealed class TransferredGenerator(TwoStageGenerator predictor, TwoStageGenerator decoder, bool standardize = false)
    : LoraGenerator(nameof(TransferredGenerator))
{
    /// <summary>Whether δ̂ is moved to the decoder run's per-coordinate scale before decoding.</summary>
    public bool Standardize { get; } = standardize;

    /// <summary>The run whose predictor is used.</summary>
    public TwoStageGenerator Predictor { get; } = Check(predictor, decoder);

    /// <summary>The run whose decoder is used.</summary>
    public TwoStageGenerator Decoder { get; } = decoder;

    static TwoStageGenerator Check(TwoStageGenerator predictor, TwoStageGenerator decoder) =>
        predictor.DeltaDim == decoder.DeltaDim
            ? predictor
            : throw new LlgbmException(
                $"Transfer: the predictor emits deltas of width {predictor.DeltaDim}, the decoder reads deltas of width {decoder.DeltaDim}.");

    /// <inheritdoc/>
    public override LoraConfig Lora => Decoder.Lora;

    /// <inheritdoc/>
    public override int ConditionDim => Predictor.ConditionDim;

    /// <inheritdoc/>
    public override LoraSet Generate(Tensor conditions)
    {
        using var scope = NewDisposeScope();
        var delta = Predictor.PredictDelta(conditions);
        if (Standardize)
            delta = ((delta - Predictor.decoder.condition_mean) / Predictor.decoder.condition_std * Decoder.decoder.condition_std)
                .add(Decoder.decoder.condition_mean, OwnedScalars.One);
        var set = Decoder.Decode(delta);
        foreach (var t in set.Tensors())
            t.MoveToOuterDisposeScope();
        return set;
    }

    /// <summary>Not supported: each part keeps the statistics of its own run.</summary>
    public override void SetConditionStatistics(Tensor mean, Tensor std) =>
        throw new LlgbmException("Transfer: the predictor keeps its own run's condition statistics.");

    /// <summary>Switches both generators between training and evaluation.</summary>
    public override void train(bool train = true)
    {
        Predictor.train(train);
        Decoder.train(train);
    }
}
