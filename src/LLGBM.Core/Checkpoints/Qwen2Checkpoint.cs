using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>
/// Hugging Face checkpoint directories of Qwen2 models: <c>config.json</c> plus <c>model.safetensors</c> or an index
/// and shards. Loading maps tensors strictly by name: a missing or unexpected tensor, or a shape mismatch, is an
/// error listing every offending name.
/// </summary>
public static class Qwen2Checkpoint
{
    const string HeadName = "lm_head.weight";
    const string EmbeddingName = "model.embed_tokens.weight";

    /// <summary>
    /// Loads the model in <paramref name="directory"/> onto <paramref name="device"/> in <paramref name="dtype"/>
    /// (weights stored in another dtype, e.g. bf16, are converted). A config whose parameters cannot fit in the memory
    /// available is refused before anything is allocated (<see cref="ModelMemory.EnsureFits"/>), and every weight must
    /// be finite.
    /// </summary>
    public static Qwen2ForCausalLM Load(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        if (!Directory.Exists(directory))
            throw new LlgbmException($"{directory}: no such checkpoint directory.");
        var configPath = Path.Combine(directory, "config.json");
        var config = Qwen2Config.Load(configPath);
        ModelMemory.EnsureFits(config, dtype, device, configPath);
        using var reader = CheckpointWeights.Open(directory);
        var model = new Qwen2ForCausalLM(config, device, dtype);
        try
        {
            LoadWeights(model, reader);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }

    /// <summary>Copies every tensor of <paramref name="reader"/> into the parameter of the same name, strictly.</summary>
    public static void LoadWeights(Qwen2ForCausalLM model, CheckpointReader reader)
    {
        var source = reader.Files.Count == 1 ? reader.Files[0] : Path.GetDirectoryName(reader.Files[0]) ?? "checkpoint";
        var targets = model.state_dict();
        var tied = model.Config.TieWordEmbeddings;
        var names = reader.Names.ToHashSet();

        var missing = targets.Keys.Where(n => !names.Contains(n)).Order().ToList();
        // A tied checkpoint may still carry lm_head.weight; it must then equal the embedding (checked below).
        var unexpected = names.Where(n => !targets.ContainsKey(n) && !(tied && n == HeadName)).Order().ToList();
        var mismatched = targets
            .Where(t => names.Contains(t.Key) && !reader.Entry(t.Key).ShapeArray().SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key} (checkpoint [{string.Join(", ", reader.Entry(t.Key).Shape)}], model [{string.Join(", ", t.Value.shape)}])")
            .ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            var problems = new List<string>();
            if (missing.Count > 0)
                problems.Add($"missing tensors: {Listing(missing)}");
            if (unexpected.Count > 0)
                problems.Add($"unexpected tensors: {Listing(unexpected)}");
            if (mismatched.Count > 0)
                problems.Add($"shape mismatches: {Listing(mismatched)}");
            throw new LlgbmException(
                $"{source}: the checkpoint does not match the Qwen2 architecture of its config.json ({string.Join("; ", problems)}).");
        }

        using var noGrad = no_grad();
        foreach (var (name, target) in targets)
        {
            using var value = reader.Read(name);
            target.copy_(value);
        }
        if (tied && names.Contains(HeadName))
        {
            using var head = reader.Read(HeadName);
            using var embedding = reader.Read(EmbeddingName);
            if (!head.shape.SequenceEqual(embedding.shape) || !head.eq(embedding).all().item<bool>())
                throw new LlgbmException(
                    $"{source}: tie_word_embeddings is true but {HeadName} differs from {EmbeddingName}; " +
                    $"set tie_word_embeddings to false to use a separate head.");
        }
    }

    /// <summary>
    /// Writes <c>config.json</c> and the weights of <paramref name="model"/> into <paramref name="directory"/>, stored
    /// in <paramref name="storage"/> (default: the model's dtype), in shards when larger than
    /// <paramref name="maxShardBytes"/>. Each file is written atomically.
    /// </summary>
    public static void Save(Qwen2ForCausalLM model, string directory, ScalarType? storage = null, long maxShardBytes = long.MaxValue)
    {
        var dtype = storage ?? model.Dtype;
        Directory.CreateDirectory(directory);
        var tensors = model.state_dict().Select(kv => KeyValuePair.Create(kv.Key, kv.Value));
        using (var scope = NewDisposeScope())
        {
            using var noGrad = no_grad();
            var converted = tensors.Select(kv => KeyValuePair.Create(kv.Key, kv.Value.detach().to_type(dtype).cpu())).ToList();
            CheckpointWeights.Save(directory, converted, maxShardBytes);
        }
        var config = model.Config with { TorchDtype = DtypeName(dtype) };
        AtomicFile.WriteText(Path.Combine(directory, "config.json"), config.ToJsonString() + "\n");
    }

    /// <summary>The <c>torch_dtype</c> name of a scalar type.</summary>
    public static string DtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new LlgbmException($"Checkpoints are stored as float32, bfloat16 or float16, not {dtype}."),
    };

    static string Listing(IReadOnlyList<string> names) =>
        names.Count <= 12 ? string.Join(", ", names) : $"{string.Join(", ", names.Take(12))} and {names.Count - 12} more";
}
