using LLGBM.Model;

namespace LLGBM.Checkpoints;

/// <summary>
/// Named architectures: the Qwen2.5 family (the Qwen/Qwen2.5-* config.json files; docs/reference.md §1) and tiny models
/// that train on a laptop CPU.
/// </summary>
public static class Qwen2Presets
{
    static Qwen2Config Qwen25(int hidden, int intermediate, int layers, int heads, int kvHeads) => new()
    {
        VocabSize = 151936,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        RmsNormEps = 1e-6,
        RopeTheta = 1_000_000.0,
        TieWordEmbeddings = true,
        MaxPositionEmbeddings = 32768,
        TorchDtype = "bfloat16",
        BosTokenId = 151643,
        EosTokenId = 151645,
    };

    /// <summary>Qwen2.5-0.5B(-Instruct): H 896, I 4864, 24 layers, 14 heads, 2 KV heads, hd 64.</summary>
    public static Qwen2Config Qwen25_0_5B => Qwen25(896, 4864, 24, 14, 2);

    /// <summary>Qwen2.5-1.5B(-Instruct): H 1536, I 8960, 28 layers, 12 heads, 2 KV heads, hd 128.</summary>
    public static Qwen2Config Qwen25_1_5B => Qwen25(1536, 8960, 28, 12, 2);

    /// <summary>Qwen2.5-7B(-Instruct): H 3584, I 18944, 28 layers, 28 heads, 4 KV heads, hd 128.</summary>
    public static Qwen2Config Qwen25_7B => Qwen25(3584, 18944, 28, 28, 4);

    /// <summary>
    /// The embedded base model's architecture: a byte-level vocabulary (256 bytes and special tokens, padded to 272),
    /// H 128, 4 layers, 4 query heads over 2 KV heads, tied embeddings.
    /// </summary>
    public static Qwen2Config Tiny => new()
    {
        VocabSize = 272,
        HiddenSize = 128,
        IntermediateSize = 352,
        NumHiddenLayers = 4,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        RmsNormEps = 1e-6,
        RopeTheta = 10000.0,
        TieWordEmbeddings = true,
        MaxPositionEmbeddings = 1024,
        TorchDtype = "float32",
    };

    /// <summary>
    /// A second small byte-level backbone of another width and depth, for cross-backbone transfer: H 96, 3 layers,
    /// intermediate 256, 4 query heads over 2 KV heads (head dimension 24), tied embeddings.
    /// </summary>
    public static Qwen2Config TinyB => Tiny with { HiddenSize = 96, IntermediateSize = 256, NumHiddenLayers = 3 };

    /// <summary>A minimal model for unit tests: H 32, 2 layers, 4 query heads over 2 KV heads, untied head.</summary>
    public static Qwen2Config Micro => new()
    {
        VocabSize = 64,
        HiddenSize = 32,
        IntermediateSize = 48,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        RmsNormEps = 1e-6,
        RopeTheta = 10000.0,
        TieWordEmbeddings = false,
        MaxPositionEmbeddings = 256,
        TorchDtype = "float32",
    };

    /// <summary>Every preset by its command-line name.</summary>
    public static IReadOnlyDictionary<string, Qwen2Config> All { get; } = new Dictionary<string, Qwen2Config>(StringComparer.OrdinalIgnoreCase)
    {
        ["qwen2.5-0.5b"] = Qwen25_0_5B,
        ["qwen2.5-0.5b-instruct"] = Qwen25_0_5B,
        ["qwen2.5-1.5b"] = Qwen25_1_5B,
        ["qwen2.5-1.5b-instruct"] = Qwen25_1_5B,
        ["qwen2.5-7b"] = Qwen25_7B,
        ["qwen2.5-7b-instruct"] = Qwen25_7B,
        ["tiny"] = Tiny,
        ["tiny-b"] = TinyB,
        ["micro"] = Micro,
    };

    /// <summary>The preset of that name, or an error listing the known names.</summary>
    public static Qwen2Config Get(string name) =>
        All.TryGetValue(name, out var config)
            ? config
            : throw new LlgbmException($"Unknown model preset \"{name}\". Known presets: {string.Join(", ", All.Keys)}.");
}
