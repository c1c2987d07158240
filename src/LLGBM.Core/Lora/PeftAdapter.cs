using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LLGBM.Checkpoints;
using LLGBM.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// PEFT LoRA adapter directories (peft/utils/save_and_load.py; docs/reference.md §3): <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c>, with tensors keyed
/// <c>base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight</c> (A [r, in]) and
/// <c>….lora_B.weight</c> (B [out, r]). Files PEFT writes load here, and files written here load in PEFT as they are.
/// </summary>
/// <remarks>
/// Reading is strict about the tensors: every key must name the A or B of a linear module of the model that
/// <c>adapter_config.json</c> targets, with the shape of that module and the rank the config gives it, and every A needs
/// its B. A targeted module without tensors is allowed (PEFT leaves it at its initialisation, B = 0, a no-op) and is
/// simply absent from the loaded set. Config fields PEFT writes but that do not change a Qwen2 LoRA's function
/// (<c>revision</c>, <c>modules_to_save</c> when null, <c>init_lora_weights</c>, <c>megatron_config</c>, …) are ignored.
/// </remarks>
public static class PeftAdapter
{
    /// <summary>The name of the config file.</summary>
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>The name of the weights file.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The prefix PEFT gives every tensor key of a causal-LM adapter (the PeftModel and LoraModel wrappers).</summary>
    public const string KeyPrefix = "base_model.model.";

    /// <summary>PEFT's default <c>target_modules</c> for Qwen2 when the config gives none.</summary>
    public static readonly IReadOnlyList<string> DefaultTargetModules = ["q_proj", "v_proj"];

    const string AllLinear = "all-linear";

    /// <summary>
    /// Reads the adapter in <paramref name="dir"/> for a model of architecture <paramref name="model"/>. Returns the
    /// config (r, alpha, rsLoRA, dropout, rank and alpha patterns; <see cref="LoraConfig.TargetModules"/> and
    /// <see cref="LoraConfig.Layers"/> describe the targeted modules, whose exact set the returned set's keys give) and
    /// the modules, each with its scale from the config. The set owns its tensors, converted to
    /// <paramref name="dtype"/> on <paramref name="device"/>; dispose it.
    /// </summary>
    /// <exception cref="LlgbmException">A file is missing or malformed, or does not fit the model; the message names the
    /// file and every offending key or field.</exception>
    public static (LoraConfig Config, LoraSet Adapter) Load(string dir, Qwen2Config model, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        if (!Directory.Exists(dir))
            throw new LlgbmException($"{dir}: no such adapter directory; a PEFT adapter directory holds {ConfigFileName} and {WeightsFileName}.");
        var (config, targeted) = ReadConfig(Path.Combine(dir, ConfigFileName), model);
        var weightsPath = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(weightsPath))
        {
            var legacy = File.Exists(Path.Combine(dir, "adapter_model.bin"))
                ? " (adapter_model.bin is there: only the safetensors format is read; convert it with PEFT)"
                : "";
            throw new LlgbmException($"{weightsPath}: not found{legacy}.");
        }

        using var reader = SafetensorsReader.Open(weightsPath);
        var factors = MapKeys(reader, model, config, targeted);
        var modules = new Dictionary<string, LoraModule>(StringComparer.Ordinal);
        var loaded = new List<Tensor>();
        try
        {
            foreach (var (path, (keyA, keyB)) in factors)
            {
                var a = Read(reader, keyA, dtype, device, loaded);
                var b = Read(reader, keyB, dtype, device, loaded);
                modules[path] = LoraModule.LowRank(a, b, config.ScaleOf(path));
            }
            return (config, new LoraSet(modules, ownsTensors: true, config.Dropout).ValidateFor(model, weightsPath));
        }
        catch
        {
            foreach (var t in loaded)
                t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="adapter"/> into <paramref name="dir"/> as a PEFT adapter: the factors as
    /// <paramref name="dtype"/> (default float32) in <c>adapter_model.safetensors</c>, then <c>adapter_config.json</c>
    /// with <c>target_modules</c> the sorted names of the modules present, and <c>rank_pattern</c> / <c>alpha_pattern</c>
    /// entries (keyed by module path) for every module whose rank or alpha differs from <paramref name="config"/>'s
    /// r and alpha; a module's alpha is recovered from its scale. Each file is written atomically and the config last
    /// (an older config is removed first), so a directory with a config always holds its weights.
    /// </summary>
    /// <exception cref="LlgbmException">The set is batched, empty, holds a dense module (truncate it to low rank, e.g. by
    /// SVD, first) or a key that names no Qwen2 linear module.</exception>
    public static void Save(string dir, LoraConfig config, LoraSet adapter, string? baseModelNameOrPath = null, ScalarType dtype = ScalarType.Float32)
    {
        if (adapter.IsBatched)
            throw new LlgbmException(
                $"{dir}: a PEFT adapter holds one adapter, but this LoRA set holds {adapter.Count} per-example adapters; save them one at a time.");
        if (adapter.Modules.Count == 0)
            throw new LlgbmException($"{dir}: the LoRA set holds no modules.");
        var dense = adapter.Modules.Where(kv => kv.Value.Delta is not null).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        if (dense.Count > 0)
            throw new LlgbmException(
                $"{dir}: PEFT adapters hold low-rank factors, but {string.Join(", ", dense)} {(dense.Count == 1 ? "is a dense ΔW" : "are dense ΔW")}; " +
                $"truncate them to low rank first (SVD: ΔW ≈ U_r S_r V_rᵀ, B = U_r S_r, A = V_rᵀ).");
        var unknown = adapter.Modules.Keys.Where(p => LoraTarget.Parse(p) is null).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
            throw new LlgbmException($"{dir}: {string.Join(", ", unknown)} name no Qwen2 linear module (keys look like model.layers.0.self_attn.q_proj).");
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64))
            throw new LlgbmException($"{dir}: adapters are stored as float32, bfloat16 or float16, not {dtype}.");

        var paths = adapter.Modules.Keys.Order(StringComparer.Ordinal).ToList();
        var rankPattern = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var alphaPattern = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            var (rank, alpha) = RankAndAlpha(config, path, adapter.Modules[path]);
            if (rank != config.Rank)
                rankPattern[path] = rank;
            if (!Close(alpha, config.Alpha))
                alphaPattern[path] = alpha;
        }
        var targets = paths.Select(p => LoraTarget.Parse(p)!.Value).ToList();
        var json = new JsonObject
        {
            ["alpha_pattern"] = ToObject(alphaPattern, v => JsonValue.Create(v)),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = config.Layers is null
                ? null
                : new JsonArray(targets.Select(t => t.Layer).Distinct().Order().Select(l => (JsonNode)l).ToArray()),
            ["lora_alpha"] = config.Alpha,
            ["lora_dropout"] = config.Dropout,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = config.Rank,
            ["rank_pattern"] = ToObject(rankPattern, v => JsonValue.Create(v)),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(targets.Select(t => t.Module).Distinct().Order(StringComparer.Ordinal).Select(m => (JsonNode)m).ToArray()),
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = config.UseRsLora,
        };

        Directory.CreateDirectory(dir);
        var configPath = Path.Combine(dir, ConfigFileName);
        if (File.Exists(configPath))
            File.Delete(configPath);
        using (var scope = NewDisposeScope())
        {
            using var noGrad = no_grad();
            var tensors = new List<KeyValuePair<string, Tensor>>();
            foreach (var path in paths)
            {
                var module = adapter.Modules[path];
                tensors.Add(KeyValuePair.Create($"{KeyPrefix}{path}.lora_A.weight", module.A!.detach().to_type(dtype).cpu()));
                tensors.Add(KeyValuePair.Create($"{KeyPrefix}{path}.lora_B.weight", module.B!.detach().to_type(dtype).cpu()));
            }
            SafetensorsWriter.Save(Path.Combine(dir, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        AtomicFile.WriteText(configPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }) + "\n");
    }

    /// <summary>
    /// The module paths PEFT targets with <paramref name="targetModules"/> in a model of architecture
    /// <paramref name="model"/>: a list (a module matches when its path equals an entry or ends with <c>.</c> + the
    /// entry; <paramref name="layersToTransform"/> then restricts the layers), a regular expression (matched against
    /// whole paths, as Python's <c>re.fullmatch</c>), <c>"all-linear"</c> (every linear module but the output head), or
    /// null (PEFT's Qwen2 default, q_proj and v_proj). A list entry or regex that matches no module is an error.
    /// </summary>
    static List<string> ResolveTargets(Qwen2Config model, JsonNode? targetModules, IReadOnlyList<int>? layersToTransform, string source)
    {
        var all = Enumerable.Range(0, model.NumHiddenLayers).SelectMany(l => LoraTarget.All.Select(m => LoraTarget.Path(l, m))).ToList();
        if (targetModules is JsonValue value && value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() != AllLinear)
        {
            var pattern = value.GetValue<string>();
            Regex regex;
            try
            {
                regex = new Regex($"^(?:{pattern})\\z", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            }
            catch (ArgumentException e)
            {
                throw new LlgbmException($"{source}: target_modules \"{pattern}\" is not a valid regular expression ({e.Message}).", e);
            }
            var matched = all.Where(p => regex.IsMatch(p)).ToList();
            if (matched.Count == 0)
                throw new LlgbmException(
                    $"{source}: target_modules \"{pattern}\" (a regular expression matched against whole module paths such as " +
                    $"model.layers.0.self_attn.q_proj) matches no linear module of the model.");
            return matched;
        }

        IReadOnlyList<string> names = targetModules switch
        {
            null => DefaultTargetModules,
            JsonValue => LoraTarget.All,
            JsonArray array => array.Select((n, i) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String
                ? v.GetValue<string>()
                : throw new LlgbmException($"{source}: target_modules[{i}] must be a string, found {n?.ToJsonString() ?? "null"}.")).ToList(),
            _ => throw new LlgbmException(
                $"{source}: target_modules must be a list of module names, a regular expression or \"{AllLinear}\", found {targetModules.ToJsonString()}."),
        };
        var result = new List<string>();
        foreach (var path in all)
        {
            if (names.Contains(path))
                result.Add(path);
            else if (names.Any(n => path.EndsWith("." + n, StringComparison.Ordinal))
                && (layersToTransform is null || layersToTransform.Count == 0 || layersToTransform.Contains(LoraTarget.Parse(path)!.Value.Layer)))
                result.Add(path);
        }
        var unmatched = names.Where(n => !all.Any(p => p == n || p.EndsWith("." + n, StringComparison.Ordinal))).ToList();
        if (unmatched.Count > 0)
            throw new LlgbmException(
                $"{source}: target_modules {string.Join(", ", unmatched.Select(n => $"\"{n}\""))} {(unmatched.Count == 1 ? "names" : "name")} no linear " +
                $"module of the Qwen2 model; expected some of {string.Join(", ", LoraTarget.All)} (or \"{AllLinear}\").");
        return result;
    }

    /// <summary>Reads and checks <c>adapter_config.json</c>; returns the config and the targeted module paths.</summary>
    static (LoraConfig Config, HashSet<string> Targeted) ReadConfig(string path, Qwen2Config model)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new LlgbmException($"{path}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not valid JSON ({e.Message}).", e);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlgbmException($"{path}: not found; a PEFT adapter directory holds {ConfigFileName} and {WeightsFileName}.", e);
        }
        catch (IOException e)
        {
            throw new LlgbmException($"{path}: cannot be read ({e.Message}).", e);
        }

        var peftType = String(json, "peft_type", path);
        if (peftType is not null && peftType != "LORA")
            throw new LlgbmException($"{path}: peft_type is \"{peftType}\"; only \"LORA\" adapters are supported.");
        var taskType = String(json, "task_type", path);
        if (taskType is not null && taskType != "CAUSAL_LM")
            throw new LlgbmException(
                $"{path}: task_type is \"{taskType}\"; only \"CAUSAL_LM\" adapters (keys base_model.model.model.layers.…) are supported.");
        var bias = String(json, "bias", path) ?? "none";
        if (bias != "none")
            throw new LlgbmException($"{path}: bias is \"{bias}\"; only \"none\" is supported (adapters that train biases are not).");
        if (Bool(json, "fan_in_fan_out", path) == true)
            throw new LlgbmException($"{path}: fan_in_fan_out is true, but Qwen2's linear weights are stored [out, in]; it must be false.");
        if (Bool(json, "use_dora", path) == true)
            throw new LlgbmException($"{path}: use_dora is true; DoRA adapters are not supported.");
        if (Bool(json, "lora_bias", path) == true)
            throw new LlgbmException($"{path}: lora_bias is true; adapters with a bias on lora_B are not supported.");
        if (json["modules_to_save"] is JsonArray { Count: > 0 } saved)
            throw new LlgbmException($"{path}: modules_to_save is {saved.ToJsonString()}; adapters that carry full copies of modules are not supported.");

        var layers = json["layers_to_transform"] switch
        {
            null => null,
            JsonArray array => array.Select((n, i) => IntOf(n, $"layers_to_transform[{i}]", path)).ToList(),
            var n => new List<int> { IntOf(n, "layers_to_transform", path) },
        };
        var bad = layers?.Where(l => l < 0 || l >= model.NumHiddenLayers).ToList();
        if (bad is { Count: > 0 })
            throw new LlgbmException($"{path}: layers_to_transform names layer {string.Join(", ", bad)}, but the model has {model.NumHiddenLayers} layers.");

        var targets = ResolveTargets(model, json["target_modules"], layers, path);
        var ranks = Pattern(json, "rank_pattern", path, (n, field) => IntOf(n, field, path));
        var alphas = Pattern(json, "alpha_pattern", path, (n, field) => Number(n, field, path));
        var parsedTargets = targets.Select(t => LoraTarget.Parse(t)!.Value).ToList();
        var targetedLayers = parsedTargets.Select(t => t.Layer).Distinct().Order().ToList();
        var rank = json["r"] is { } r ? IntOf(r, "r", path) : 8;
        var loraAlpha = json["lora_alpha"] is { } alpha ? Number(alpha, "lora_alpha", path) : 8;
        var loraDropout = json["lora_dropout"] is { } dropout ? Number(dropout, "lora_dropout", path) : 0;
        var useRsLora = Bool(json, "use_rslora", path) ?? false;
        LoraConfig config;
        try
        {
            config = new LoraConfig
            {
                Rank = rank,
                Alpha = loraAlpha,
                Dropout = loraDropout,
                UseRsLora = useRsLora,
                TargetModules = LoraTarget.All.Where(m => parsedTargets.Any(t => t.Module == m)).ToList(),
                Layers = targetedLayers.Count == model.NumHiddenLayers ? null : targetedLayers,
                RankPattern = ranks,
                AlphaPattern = alphas,
            }.Validate(model.NumHiddenLayers);
        }
        catch (LlgbmException e)
        {
            throw new LlgbmException($"{path}: {e.Message}", e);
        }
        return (config, targets.ToHashSet(StringComparer.Ordinal));
    }

    /// <summary>
    /// Maps every tensor key of the file to (module path, A or B), checking names, targets, shapes and pairs; throws
    /// one error listing every offending key.
    /// </summary>
    static SortedDictionary<string, (string A, string B)> MapKeys(SafetensorsReader reader, Qwen2Config model, LoraConfig config, HashSet<string> targeted)
    {
        var file = reader.Path;
        var unknown = new List<string>();
        var untargeted = new List<string>();
        var shapes = new List<string>();
        var duplicates = new List<string>();
        var a = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var b = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in reader.Entries.Keys.Order(StringComparer.Ordinal))
        {
            if (ParseKey(key) is not { } parsed || LoraTarget.Parse(parsed.Path) is not { } target || target.Layer >= model.NumHiddenLayers)
            {
                unknown.Add(key);
                continue;
            }
            if (!targeted.Contains(parsed.Path))
            {
                untargeted.Add(key);
                continue;
            }
            var factors = parsed.IsA ? a : b;
            if (!factors.TryAdd(parsed.Path, key))
            {
                duplicates.Add($"{factors[parsed.Path]} and {key}");
                continue;
            }
            var (outFeatures, inFeatures) = LoraSet.ShapeOf(model, parsed.Path);
            var rank = config.RankOf(parsed.Path);
            long[] expected = parsed.IsA ? [rank, inFeatures] : [outFeatures, rank];
            var shape = reader.Entries[key].Shape;
            if (!shape.SequenceEqual(expected))
                shapes.Add($"{key} is [{string.Join(", ", shape)}], expected [{string.Join(", ", expected)}] (r = {rank})");
        }
        var unpaired = a.Keys.Except(b.Keys).Select(p => $"{a[p]} has no lora_B")
            .Concat(b.Keys.Except(a.Keys).Select(p => $"{b[p]} has no lora_A"))
            .ToList();

        var problems = new List<string>();
        if (unknown.Count > 0)
            problems.Add(
                $"keys that name no LoRA factor of a linear module of the model ({model.NumHiddenLayers} layers; " +
                $"keys look like {KeyPrefix}model.layers.0.self_attn.q_proj.lora_A.weight): {Listing(unknown)}");
        if (untargeted.Count > 0)
            problems.Add($"keys of modules that {ConfigFileName}'s target_modules does not target: {Listing(untargeted)}");
        if (duplicates.Count > 0)
            problems.Add($"factors given twice: {Listing(duplicates)}");
        if (unpaired.Count > 0)
            problems.Add($"unpaired factors: {Listing(unpaired)}");
        if (shapes.Count > 0)
            problems.Add($"shape mismatches: {Listing(shapes)}");
        if (problems.Count == 0 && a.Count == 0)
            problems.Add("the file holds no lora_A / lora_B tensors");
        if (problems.Count > 0)
            throw new LlgbmException($"{file}: the adapter does not fit the model ({string.Join("; ", problems)}).");
        return new SortedDictionary<string, (string A, string B)>(a.ToDictionary(kv => kv.Key, kv => (kv.Value, b[kv.Key])), StringComparer.Ordinal);
    }

    /// <summary>
    /// Splits <c>base_model.model.{path}.lora_A.weight</c> (or PEFT's in-memory <c>….lora_A.default.weight</c>) into the
    /// module path and which factor it is; null for any other key.
    /// </summary>
    static (string Path, bool IsA)? ParseKey(string key)
    {
        if (!key.StartsWith(KeyPrefix, StringComparison.Ordinal))
            return null;
        var rest = key[KeyPrefix.Length..];
        foreach (var (suffix, isA) in new[]
                 { (".lora_A.weight", true), (".lora_B.weight", false), (".lora_A.default.weight", true), (".lora_B.default.weight", false) })
            if (rest.EndsWith(suffix, StringComparison.Ordinal))
                return (rest[..^suffix.Length], isA);
        return null;
    }

    static Tensor Read(SafetensorsReader reader, string key, ScalarType dtype, Device? device, List<Tensor> loaded)
    {
        var stored = reader.Read(key);
        if (stored.dtype == dtype && (device is null || device.type == DeviceType.CPU))
        {
            loaded.Add(stored);
            return stored;
        }
        using (stored)
        {
            var converted = stored.to(dtype, device ?? CPU);
            loaded.Add(converted);
            return converted;
        }
    }

    /// <summary>The (rank, alpha) a module has in PEFT's terms: its rank, and the alpha that gives its scale.</summary>
    static (int Rank, double Alpha) RankAndAlpha(LoraConfig config, string path, LoraModule module)
    {
        var rank = (int)module.Rank;
        if (rank == config.RankOf(path) && Close(module.Scale, config.ScaleOf(path)))
            return (rank, config.AlphaOf(path));
        return (rank, module.Scale * (config.UseRsLora ? Math.Sqrt(rank) : rank));
    }

    static bool Close(double x, double y) => Math.Abs(x - y) <= 1e-9 * Math.Max(1, Math.Max(Math.Abs(x), Math.Abs(y)));

    static JsonObject ToObject<T>(SortedDictionary<string, T> values, Func<T, JsonNode?> node)
    {
        var json = new JsonObject();
        foreach (var (key, value) in values)
            json[key] = node(value);
        return json;
    }

    static Dictionary<string, T> Pattern<T>(JsonObject json, string field, string source, Func<JsonNode, string, T> value)
    {
        return json[field] switch
        {
            null => [],
            JsonObject obj => obj.ToDictionary(
                kv => kv.Key,
                kv => kv.Value is null
                    ? throw new LlgbmException($"{source}: {field}[\"{kv.Key}\"] must be a number, found null.")
                    : value(kv.Value, $"{field}[\"{kv.Key}\"]")),
            var other => throw new LlgbmException($"{source}: {field} must be an object mapping module names to values, found {other.ToJsonString()}."),
        };
    }

    static string? String(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var other => throw new LlgbmException($"{source}: {field} must be a string, found {other.ToJsonString()}."),
    };

    static bool? Bool(JsonObject json, string field, string source) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var other => throw new LlgbmException($"{source}: {field} must be true or false, found {other.ToJsonString()}."),
    };

    static double Number(JsonNode node, string field, string source) =>
        node.GetValueKind() == JsonValueKind.Number && double.TryParse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
            && double.IsFinite(x)
            ? x
            : throw new LlgbmException($"{source}: {field} must be a finite number, found {node.ToJsonString()}.");

    static int IntOf(JsonNode? node, string field, string source) =>
        node is not null && node.GetValueKind() == JsonValueKind.Number
            && double.TryParse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
            && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue
            ? (int)x
            : throw new LlgbmException($"{source}: {field} must be an integer, found {node?.ToJsonString() ?? "null"}.");

    static string Listing(IReadOnlyList<string> items) =>
        items.Count <= 12 ? string.Join(", ", items) : $"{string.Join(", ", items.Take(12))} and {items.Count - 12} more";
}
