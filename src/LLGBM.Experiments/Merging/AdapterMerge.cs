using System.Text.Json.Nodes;
using LLGBM.Algebra;
using LLGBM.Lora;
using LLGBM.Model;

namespace LLGBM.Experiments;

/// <summary>What <see cref="AdapterMerge.Run"/> merges and where it writes the result.</summary>
/// <param name="Adapters">The PEFT adapter directories to merge.</param>
/// <param name="Out">The directory of the merged PEFT adapter.</param>
/// <param name="Merge">The merge: method, density, weights, seed and λ.</param>
/// <param name="Rank">The written adapter's rank (truncated SVD); null for the largest rank among the inputs.</param>
/// <param name="Factors">Merge the A and B factors separately, as PEFT's add_weighted_adapter does (no SVD).</param>
/// <param name="Model">
/// The checkpoint directory whose config.json gives the module shapes; null for the first adapter's
/// base_model_name_or_path.
/// </param>
/// <param name="Force">Replace an adapter already in <paramref name="Out"/>.</param>
public sealed record AdapterMergeSettings(
    IReadOnlyList<string> Adapters, string Out, Merge.Settings Merge, int? Rank = null, bool Factors = false,
    string? Model = null, bool Force = false);

/// <summary>What <see cref="AdapterMerge.Run"/> wrote.</summary>
/// <param name="Out">The merged adapter's directory.</param>
/// <param name="Merge">The merge as described by <see cref="Merge.Settings.Describe"/>.</param>
/// <param name="Adapters">The number of adapters merged.</param>
/// <param name="Rank">The written adapter's rank.</param>
/// <param name="Modules">The number of modules written.</param>
/// <param name="Factors">Whether A and B were merged separately (no SVD).</param>
/// <param name="RelativeError">‖ΔW − B·A‖/‖ΔW‖ over every module after the SVD (null with factors).</param>
/// <param name="WorstModule">The module with the largest relative error (null with factors).</param>
/// <param name="WorstError">Its relative error (null with factors).</param>
public sealed record AdapterMergeResult(
    string Out, string Merge, int Adapters, int Rank, int Modules, bool Factors, double? RelativeError, string? WorstModule,
    double? WorstError);

/// <summary>
/// Merges PEFT adapters on ΔW (<see cref="Merge.Run"/>: linear, TIES, DARE, DARE-TIES) and writes the result as a PEFT
/// adapter by truncated SVD (<see cref="Export.SavePeft"/>), or merges their A and B factors separately as PEFT does
/// (<see cref="Merge.Peft.Run"/>).
/// </summary>
public static class AdapterMerge
{
    /// <summary>Loads, merges and writes; <paramref name="progress"/> receives a line per step.</summary>
    public static AdapterMergeResult Run(AdapterMergeSettings s, Action<string>? progress = null)
    {
        if (s.Adapters.Count == 0)
            throw new LlgbmException("--adapters: give at least one adapter directory.");
        if (File.Exists(Path.Combine(s.Out, PeftAdapter.ConfigFileName)) && !s.Force)
            throw new LlgbmException($"--out {s.Out}: an adapter is already there; pass --force to replace it.");
        var (config, baseModel) = ModelConfig(s.Model, s.Adapters[0]);
        var loaded = new List<LoraSet>();
        try
        {
            foreach (var dir in s.Adapters)
            {
                progress?.Invoke($"loading {dir}");
                loaded.Add(PeftAdapter.Load(dir, config).Adapter);
            }
            var maxRank = loaded.SelectMany(set => set.Modules.Values).Select(m => (int)m.Rank).DefaultIfEmpty(1).Max();
            return s.Factors ? MergeFactors(s, loaded, maxRank, baseModel, progress) : MergeDeltaWeights(s, loaded, maxRank, baseModel, progress);
        }
        finally
        {
            foreach (var set in loaded)
                set.Dispose();
        }
    }

    static AdapterMergeResult MergeFactors(
        AdapterMergeSettings s, IReadOnlyList<LoraSet> loaded, int maxRank, string baseModel, Action<string>? progress)
    {
        if (s.Rank is { } r && r != maxRank)
            throw new LlgbmException($"--rank {r}: --factors keeps the adapters' rank ({maxRank}).");
        progress?.Invoke($"{s.Merge.Describe()} of the A and B factors (PEFT add_weighted_adapter)");
        using var merged = Merge.Peft.Run(s.Merge, loaded);
        var config = new LoraConfig { Rank = maxRank, Alpha = maxRank, TargetModules = TargetsOf(merged) };
        PeftAdapter.Save(s.Out, config, merged, baseModel);
        return new AdapterMergeResult(s.Out, s.Merge.Describe(), loaded.Count, maxRank, merged.Modules.Count, true, null, null, null);
    }

    static AdapterMergeResult MergeDeltaWeights(
        AdapterMergeSettings s, IReadOnlyList<LoraSet> loaded, int maxRank, string baseModel, Action<string>? progress)
    {
        var vectors = new List<TaskVector>();
        try
        {
            foreach (var set in loaded)
                vectors.Add(TaskVectorModule.OfLora(set));
            progress?.Invoke($"{s.Merge.Describe()} of {vectors.Count} task vectors");
            using var mergedVector = Merge.Run(s.Merge, vectors);
            var targetRank = s.Rank ?? maxRank;
            progress?.Invoke($"truncating to rank {targetRank} by SVD");
            var truncated = Export.SavePeft(s.Out, targetRank, baseModel, mergedVector);
            using (truncated.Adapter)
            {
                var worst = truncated.Modules.MaxBy(m => m.RelativeError)!;
                return new AdapterMergeResult(
                    s.Out, s.Merge.Describe(), loaded.Count, targetRank, truncated.Modules.Length, false, truncated.RelativeError,
                    worst.Path, worst.RelativeError);
            }
        }
        finally
        {
            foreach (var v in vectors)
                v.Dispose();
        }
    }

    /// <summary>
    /// The architecture the adapters are for: <paramref name="model"/>'s config.json, or that of the first adapter's
    /// base_model_name_or_path when it is a checkpoint directory; with the path to record in the output.
    /// </summary>
    public static (Qwen2Config Config, string BaseModel) ModelConfig(string? model, string firstAdapter)
    {
        var baseModel = model;
        if (baseModel is null)
        {
            var configPath = Path.Combine(firstAdapter, PeftAdapter.ConfigFileName);
            if (!File.Exists(configPath))
                throw new LlgbmException($"{configPath}: not found; {firstAdapter} is not a PEFT adapter directory.");
            baseModel = (JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject)?["base_model_name_or_path"]?.GetValue<string>();
            if (baseModel is null || !File.Exists(Path.Combine(baseModel, "config.json")))
                throw new LlgbmException(
                    $"{configPath}: base_model_name_or_path is {(baseModel is null ? "not set" : $"\"{baseModel}\", not a checkpoint directory here")}; " +
                    $"pass --model DIR (a checkpoint directory with config.json) for the module shapes.");
        }
        var path = Path.Combine(baseModel, "config.json");
        if (!File.Exists(path))
            throw new LlgbmException($"--model {baseModel}: no config.json there.");
        return (Qwen2Config.Load(path), baseModel);
    }

    /// <summary>The module names (q_proj, …) of a set's keys.</summary>
    static string[] TargetsOf(LoraSet set) =>
        [.. set.Modules.Keys.Select(p => LoraTarget.Parse(p)?.Module).OfType<string>().Distinct().Order(StringComparer.Ordinal)];
}
