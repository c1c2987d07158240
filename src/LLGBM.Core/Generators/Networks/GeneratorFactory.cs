using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>Builds the generator network a config names.</summary>
public static class GeneratorFactory
{
    /// <summary>
    /// A freshly initialised generator of <paramref name="lora"/> adapters for <paramref name="model"/>, reading
    /// conditions of width <paramref name="conditionDim"/>, seeded with the config's seed; <paramref name="deltaDim"/> is
    /// the width of the deltas the two-stage and delta-head variants predict.
    /// </summary>
    public static LoraGenerator Create(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, int deltaDim, Device? device = null) =>
        config.Variant switch
        {
            GeneratorVariant.Direct => Network(config, lora, model, conditionDim, device),
            GeneratorVariant.TwoStage => new TwoStageGenerator(config, lora, model, conditionDim, deltaDim, config.Seed, device),
            GeneratorVariant.DeltaHead => new DeltaHeadGenerator(Network(config, lora, model, conditionDim, null), model, deltaDim, config.Seed, device),
            var v => throw new LlgbmException($"Generator config: unknown variant {v}."),
        };

    /// <summary>
    /// The predictor of one two-stage generator driving the decoder of another (<see cref="TransferredGenerator"/>);
    /// owns neither.
    /// </summary>
    /// <exception cref="LlgbmException">Either generator is not two-stage.</exception>
    public static LoraGenerator Transferred(LoraGenerator predictor, LoraGenerator decoder, bool standardize = false) =>
        predictor is TwoStageGenerator p && decoder is TwoStageGenerator d
            ? new TransferredGenerator(p, d, standardize)
            : throw new LlgbmException(
                $"Transfer: the predictor and the decoder must be two-stage generators, found {predictor.GetName()} and {decoder.GetName()}.");

    static LoraGenerator Network(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, Device? device) =>
        config.Architecture switch
        {
            GeneratorArchitecture.HyperMlp => new HyperMlpGenerator(config, lora, model, conditionDim, config.Seed, device),
            GeneratorArchitecture.HyperConv => new HyperConvGenerator(config, lora, model, conditionDim, config.Seed, device),
            var a => throw new LlgbmException($"Generator config: unknown architecture {a}."),
        };
}
