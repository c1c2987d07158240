using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LLGBM.Model;

/// <summary>
/// The architecture of a Qwen2-family causal language model, as in a Hugging Face <c>config.json</c>
/// (<c>model_type: "qwen2"</c>). Immutable; <see cref="Validate"/> checks the invariants the model relies on.
/// </summary>
public sealed record Qwen2Config
{
    /// <summary>Number of rows of the embedding matrix (and of the output head).</summary>
    public required int VocabSize { get; init; }

    /// <summary>Width of the residual stream, H.</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Inner width of the SiLU-gated MLP, I.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>Number of decoder layers, N.</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary>Number of query heads, nH.</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary>Number of key/value heads, nKV (grouped-query attention when smaller than nH).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>The <c>head_dim</c> field when the checkpoint states it; otherwise the head width is H / nH.</summary>
    public int? ExplicitHeadDim { get; init; }

    /// <summary>Epsilon inside the RMS norms.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>Base θ of the rotary position embedding.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Whether the output head shares the embedding matrix (<c>lm_head.weight</c> may then be absent).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Longest sequence the model was trained for; <see cref="Qwen2ForCausalLM.Forward"/> refuses longer ones.</summary>
    public int MaxPositionEmbeddings { get; init; } = 32768;

    /// <summary>The checkpoint's storage dtype name (<c>torch_dtype</c>): "float32", "bfloat16" or "float16".</summary>
    public string TorchDtype { get; init; } = "float32";

    /// <summary>Beginning-of-sequence token id, if the checkpoint names one.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token id, if the checkpoint names one.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>Width of each attention head, hd.</summary>
    public int HeadDim => ExplicitHeadDim ?? HiddenSize / NumAttentionHeads;

    /// <summary>Query heads served by each key/value head (nH / nKV).</summary>
    public int GroupSize => NumAttentionHeads / NumKeyValueHeads;

    /// <summary>
    /// The number of parameters the architecture has: the embedding V·H, the head V·H unless tied, the final norm H,
    /// and per layer the q, k, v projections with their biases (H·nH·hd + nH·hd, and H·nKV·hd + nKV·hd twice), the
    /// o projection nH·hd·H, the SiLU-gated MLP 3·H·I and two norms 2·H.
    /// </summary>
    /// <exception cref="OverflowException">The count does not fit in 64 bits.</exception>
    public long ParameterCount
    {
        get
        {
            checked
            {
                long v = VocabSize, h = HiddenSize, i = IntermediateSize, hd = HeadDim;
                long q = NumAttentionHeads * hd, kv = NumKeyValueHeads * hd;
                var layer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * i + 2 * h;
                return v * h * (TieWordEmbeddings ? 1 : 2) + h + NumHiddenLayers * layer;
            }
        }
    }

    /// <summary>Throws a <see cref="LlgbmException"/> naming the first field that breaks an invariant.</summary>
    public Qwen2Config Validate(string source = "Qwen2 config")
    {
        void Positive(string field, long value)
        {
            if (value <= 0)
                throw new LlgbmException($"{source}: {field} must be positive, found {value}.");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new LlgbmException($"{source}: num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads}).");
        if (ExplicitHeadDim is null && HiddenSize % NumAttentionHeads != 0)
            throw new LlgbmException(
                $"{source}: hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}) when head_dim is not given.");
        Positive("head_dim", HeadDim);
        if (HeadDim % 2 != 0)
            throw new LlgbmException($"{source}: head_dim must be even for rotary embeddings, found {HeadDim}.");
        if (!(RmsNormEps > 0))
            throw new LlgbmException($"{source}: rms_norm_eps must be positive, found {RmsNormEps}.");
        if (!(RopeTheta > 0) || !double.IsFinite(RopeTheta))
            throw new LlgbmException($"{source}: rope_theta must be a positive finite number, found {RopeTheta}.");
        if (!double.IsFinite(RmsNormEps))
            throw new LlgbmException($"{source}: rms_norm_eps must be finite, found {RmsNormEps}.");
        try
        {
            _ = ParameterCount;
        }
        catch (OverflowException)
        {
            throw new LlgbmException(
                $"{source}: the sizes imply more than 2^63 parameters (vocab_size {VocabSize}, hidden_size {HiddenSize}, " +
                $"intermediate_size {IntermediateSize}, num_hidden_layers {NumHiddenLayers}).");
        }
        return this;
    }

    /// <summary>Reads and validates a Hugging Face <c>config.json</c>.</summary>
    public static Qwen2Config Load(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not valid JSON ({e.Message}).", e);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlgbmException($"{path}: not found; a Hugging Face checkpoint directory holds config.json.", e);
        }
        catch (IOException e)
        {
            throw new LlgbmException($"{path}: cannot be read ({e.Message}).", e);
        }
        if (root is not JsonObject obj)
            throw new LlgbmException($"{path}: expected a JSON object.");
        return FromJson(obj, path);
    }

    /// <summary>Builds a config from the JSON object of a <c>config.json</c>; unknown keys are ignored.</summary>
    public static Qwen2Config FromJson(JsonObject json, string source = "config.json")
    {
        var modelType = OptionalString(json, "model_type", source);
        if (modelType is not null && modelType != "qwen2")
            throw new LlgbmException($"{source}: model_type is \"{modelType}\"; only \"qwen2\" checkpoints are supported.");
        var act = OptionalString(json, "hidden_act", source);
        if (act is not null && act != "silu")
            throw new LlgbmException($"{source}: hidden_act is \"{act}\"; Qwen2 uses \"silu\".");
        if (OptionalBool(json, "use_sliding_window", source) == true)
            throw new LlgbmException($"{source}: use_sliding_window is true; only full attention is supported (Qwen2.5 checkpoints set it false).");

        // rope_theta sits at the top level in most checkpoints; newer ones nest it in rope_parameters.
        var theta = OptionalDouble(json, "rope_theta", source);
        if (theta is null && json["rope_parameters"] is JsonObject rope)
            theta = OptionalDouble(rope, "rope_theta", source + " rope_parameters");
        var ropeScaling = json["rope_scaling"];
        if (ropeScaling is JsonObject scaling && scaling["type"]?.ToString() is { } kind && kind != "default")
            throw new LlgbmException($"{source}: rope_scaling of type \"{kind}\" is not supported.");

        return new Qwen2Config
        {
            VocabSize = RequiredInt(json, "vocab_size", source),
            HiddenSize = RequiredInt(json, "hidden_size", source),
            IntermediateSize = RequiredInt(json, "intermediate_size", source),
            NumHiddenLayers = RequiredInt(json, "num_hidden_layers", source),
            NumAttentionHeads = RequiredInt(json, "num_attention_heads", source),
            NumKeyValueHeads = OptionalInt(json, "num_key_value_heads", source) ?? RequiredInt(json, "num_attention_heads", source),
            ExplicitHeadDim = OptionalInt(json, "head_dim", source),
            RmsNormEps = OptionalDouble(json, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = theta ?? 10000.0,
            TieWordEmbeddings = OptionalBool(json, "tie_word_embeddings", source) ?? false,
            MaxPositionEmbeddings = OptionalInt(json, "max_position_embeddings", source) ?? 32768,
            TorchDtype = OptionalString(json, "torch_dtype", source) ?? OptionalString(json, "dtype", source) ?? "float32",
            BosTokenId = OptionalInt(json, "bos_token_id", source),
            EosTokenId = OptionalInt(json, "eos_token_id", source),
        }.Validate(source);
    }

    /// <summary>The Hugging Face <c>config.json</c> object for this architecture.</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen2ForCausalLM"),
            ["model_type"] = "qwen2",
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
        };
        if (ExplicitHeadDim is { } hd)
            json["head_dim"] = hd;
        json["hidden_act"] = "silu";
        json["max_position_embeddings"] = MaxPositionEmbeddings;
        json["rms_norm_eps"] = RmsNormEps;
        json["rope_theta"] = RopeTheta;
        json["tie_word_embeddings"] = TieWordEmbeddings;
        json["torch_dtype"] = TorchDtype;
        json["use_sliding_window"] = false;
        json["attention_dropout"] = 0.0;
        json["initializer_range"] = 0.02;
        json["use_cache"] = true;
        if (BosTokenId is { } bos)
            json["bos_token_id"] = bos;
        if (EosTokenId is { } eos)
            json["eos_token_id"] = eos;
        return json;
    }

    /// <summary>Writes <c>config.json</c> text (indented) for this architecture.</summary>
    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    static JsonNode? Field(JsonObject json, string name) => json.TryGetPropertyValue(name, out var node) ? node : null;

    static int RequiredInt(JsonObject json, string name, string source) =>
        OptionalInt(json, name, source) ?? throw new LlgbmException($"{source}: missing required field \"{name}\" (an integer).");

    static int? OptionalInt(JsonObject json, string name, string source)
    {
        var node = Field(json, name);
        if (node is null)
            return null;
        if (node.GetValueKind() == JsonValueKind.Number
            && double.TryParse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
            && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue)
            return (int)x;
        throw new LlgbmException($"{source}: field \"{name}\" must be an integer, found {node.ToJsonString()}.");
    }

    static double? OptionalDouble(JsonObject json, string name, string source)
    {
        var node = Field(json, name);
        if (node is null)
            return null;
        if (node.GetValueKind() == JsonValueKind.Number
            && double.TryParse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x))
            return x;
        throw new LlgbmException($"{source}: field \"{name}\" must be a number, found {node.ToJsonString()}.");
    }

    static bool? OptionalBool(JsonObject json, string name, string source)
    {
        var node = Field(json, name);
        if (node is null)
            return null;
        if (node.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
            return node.GetValue<bool>();
        throw new LlgbmException($"{source}: field \"{name}\" must be true or false, found {node.ToJsonString()}.");
    }

    static string? OptionalString(JsonObject json, string name, string source)
    {
        var node = Field(json, name);
        if (node is null)
            return null;
        if (node.GetValueKind() == JsonValueKind.String)
            return node.GetValue<string>();
        throw new LlgbmException($"{source}: field \"{name}\" must be a string, found {node.ToJsonString()}.");
    }
}
