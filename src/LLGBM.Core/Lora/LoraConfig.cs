namespace LLGBM.Lora;

/// <summary>
/// The shape and scaling of a LoRA adapter (PEFT's <c>adapter_config.json</c> fields that matter): rank r, alpha,
/// rsLoRA, dropout, the targeted modules and layers, and per-module rank and alpha overrides.
/// </summary>
public sealed record LoraConfig
{
    /// <summary>Rank r of every module without a <see cref="RankPattern"/> override.</summary>
    public int Rank { get; init; } = 8;

    /// <summary>Alpha of every module without an <see cref="AlphaPattern"/> override.</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>Scale by alpha / √r (rank-stabilised LoRA) instead of alpha / r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>Dropout on the LoRA input during training.</summary>
    public double Dropout { get; init; }

    /// <summary>Targeted module names among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>Targeted layer indices; null targets every layer.</summary>
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>
    /// Rank overrides keyed as PEFT does: a key is a regular expression that matches a module path when
    /// <c>(.*\.)?(KEY)$</c> matches it (e.g. "q_proj", "layers.0.self_attn.q_proj" or "layers\.[0-3]\..*q_proj").
    /// When several keys match, the longest wins.
    /// </summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Alpha overrides, keyed like <see cref="RankPattern"/>.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>The rank of the module at <paramref name="path"/>.</summary>
    public int RankOf(string path) => Match(RankPattern, path) is { } r ? r : Rank;

    /// <summary>The alpha of the module at <paramref name="path"/>.</summary>
    public double AlphaOf(string path) => Match(AlphaPattern, path) is { } a ? a : Alpha;

    /// <summary>The scaling of the module at <paramref name="path"/>: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double ScaleOf(string path)
    {
        var r = RankOf(path);
        return UseRsLora ? AlphaOf(path) / Math.Sqrt(r) : AlphaOf(path) / r;
    }

    /// <summary>The module paths this config targets in a model of <paramref name="layers"/> layers.</summary>
    public IReadOnlyList<string> Paths(int layers) =>
        (Layers ?? Enumerable.Range(0, layers).ToList())
            .SelectMany(l => TargetModules.Select(m => LoraTarget.Path(l, m)))
            .ToList();

    /// <summary>Throws a <see cref="LlgbmException"/> naming the first invalid field.</summary>
    public LoraConfig Validate(int? layers = null)
    {
        if (Rank <= 0)
            throw new LlgbmException($"LoRA config: r must be positive, found {Rank}.");
        if (Dropout is < 0 or >= 1)
            throw new LlgbmException($"LoRA config: lora_dropout must lie in [0, 1), found {Dropout}.");
        var unknown = TargetModules.Where(m => !LoraTarget.All.Contains(m)).ToList();
        if (unknown.Count > 0)
            throw new LlgbmException(
                $"LoRA config: target_modules {string.Join(", ", unknown)} name no Qwen2 linear module; expected some of {string.Join(", ", LoraTarget.All)}.");
        if (TargetModules.Count == 0)
            throw new LlgbmException("LoRA config: target_modules is empty.");
        if (layers is { } n && Layers?.FirstOrDefault(l => l < 0 || l >= n, -1) is { } bad and not -1)
            throw new LlgbmException($"LoRA config: layer {bad} does not exist in a model of {n} layers.");
        foreach (var (key, r) in RankPattern)
            if (r <= 0)
                throw new LlgbmException($"LoRA config: rank_pattern[{key}] must be positive, found {r}.");
        return this;
    }

    static T? Match<T>(IReadOnlyDictionary<string, T> pattern, string path) where T : struct
    {
        // The longest matching key wins, so a full path overrides a bare module name.
        foreach (var (key, value) in pattern.OrderByDescending(kv => kv.Key.Length).ThenBy(kv => kv.Key, StringComparer.Ordinal))
            if (System.Text.RegularExpressions.Regex.IsMatch(path, $"^(.*\\.)?({key})$"))
                return value;
        return null;
    }
}
