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

    static LoraGenerator Network(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, Device? device) =>
        config.Architecture switch
        {
            GeneratorArchitecture.HyperMlp => new HyperMlpGenerator(config, lora, model, conditionDim, config.Seed, device),
            GeneratorArchitecture.HyperConv => new HyperConvGenerator(config, lora, model, conditionDim, config.Seed, device),
            var a => throw new LlgbmException($"Generator config: unknown architecture {a}."),
        };
}
