using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>Builds the generator network a config names.</summary>
public static class GeneratorFactory
{
    /// <summary>
    /// A freshly initialised generator of <paramref name="lora"/> adapters for <paramref name="model"/>, reading
    /// conditions of width <paramref name="conditionDim"/>, seeded with the config's seed.
    /// </summary>
    public static ILoraGenerator Create(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, Device? device = null) =>
        config.Architecture switch
        {
            GeneratorArchitecture.HyperMlp => new HyperMlpGenerator(config, lora, model, conditionDim, config.Seed, device),
            GeneratorArchitecture.HyperConv => new HyperConvGenerator(config, lora, model, conditionDim, config.Seed, device),
            var a => throw new LlgbmException($"Generator config: unknown architecture {a}."),
        };
}
