using System.CommandLine;
using System.Text.Json.Nodes;
using LLGBM.Algebra;
using LLGBM.Lora;
using LLGBM.Model;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm merge</c>: merges PEFT adapters on ΔW (linear, TIES, DARE, DARE-TIES; <c>LLGBM.Algebra.Merge</c>) and
/// writes the result as a PEFT adapter by truncated SVD, or merges their A and B factors separately as PEFT does
/// (<c>--factors</c>).
/// </summary>
public static class MergeCommand
{
    /// <summary>The accepted <c>--method</c> values.</summary>
    public static readonly string[] MethodChoices = ["linear", "ties", "dare", "dare-ties"];

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var method = new Option<string>("--method") { Description = "linear (weighted average), ties (trim, elect sign, disjoint mean), dare (drop and rescale, then average) or dare-ties.", Required = true };
        method.AcceptOnlyFromAmong(MethodChoices);
        var adapters = new Option<string[]>("--adapters") { Description = "The PEFT adapter directories to merge.", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Directory to write the merged PEFT adapter to.", Required = true };
        var density = new Option<double>("--density") { Description = "Fraction of entries kept: TIES's trim density k, DARE's 1 − p.", DefaultValueFactory = _ => Merge.DefaultDensity };
        var weights = new Option<double[]>("--weights") { Description = "Relative weights, one per adapter (default: uniform). linear and dare take the weighted average; ties and dare-ties scale each task vector by its weight (normalised to mean 1) before the sign vote.", AllowMultipleArgumentsPerToken = true };
        var lambda = new Option<double>("--lambda") { Description = "Scale of the merged task vector (TIES's λ).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long>("--seed") { Description = "Seed of DARE's drop masks.", DefaultValueFactory = _ => 0 };
        var rank = new Option<int?>("--rank") { Description = "Rank of the written adapter (truncated SVD of each module's merged ΔW); default: the largest rank among the inputs." };
        var factors = new Option<bool>("--factors") { Description = "Merge the A and B factors separately, as PEFT's add_weighted_adapter does (no SVD; every adapter needs the same rank; B·A is then not the merge of the ΔW)." };
        var model = new Option<string?>("--model") { Description = "Base checkpoint directory whose config.json gives the module shapes (default: the first adapter's base_model_name_or_path)." };
        var force = new Option<bool>("--force") { Description = "Replace an adapter already in --out." };
        var command = new Command("merge", "Merges PEFT LoRA adapters on ΔW = scale · B · A per module (linear, TIES, DARE, DARE-TIES) and writes a PEFT adapter by truncated SVD, reporting the relative reconstruction error.")
        {
            method, adapters, output, density, weights, lambda, seed, rank, factors, model, force,
        };
        CommandAction.Set(command, parse =>
        {
            var dirs = parse.GetValue(adapters) ?? [];
            if (dirs.Length == 0)
                throw new LlgbmException("--adapters: give at least one adapter directory.");
            var outDir = parse.GetValue(output)!;
            if (File.Exists(Path.Combine(outDir, PeftAdapter.ConfigFileName)) && !parse.GetValue(force))
                throw new LlgbmException($"--out {outDir}: an adapter is already there; pass --force to replace it.");
            var (config, baseModel) = ModelConfig(parse.GetValue(model), dirs[0]);
            var settings = new Merge.Settings(
                Merge.Method.Parse(parse.GetValue(method)!), parse.GetValue(density), parse.GetValue(weights) ?? [],
                parse.GetValue(seed), parse.GetValue(lambda));
            var err = CommandAction.Err(parse);
            var o = CommandAction.Out(parse);

            var loaded = new List<LoraSet>();
            try
            {
                foreach (var dir in dirs)
                {
                    err.WriteLine($"[merge] loading {dir}");
                    loaded.Add(PeftAdapter.Load(dir, config).Adapter);
                }
                var maxRank = loaded.SelectMany(s => s.Modules.Values).Select(m => (int)m.Rank).DefaultIfEmpty(1).Max();
                if (parse.GetValue(factors))
                {
                    if (parse.GetValue(rank) is { } r && r != maxRank)
                        throw new LlgbmException($"--rank {r}: --factors keeps the adapters' rank ({maxRank}).");
                    err.WriteLine($"[merge] {settings.Describe()} of the A and B factors (PEFT add_weighted_adapter)");
                    using var merged = Merge.Peft.Run(settings, loaded);
                    PeftAdapter.Save(outDir, new LoraConfig { Rank = maxRank, Alpha = maxRank, TargetModules = TargetsOf(merged) }, merged, baseModel);
                    o.WriteLine($"wrote {outDir}: {settings.Describe()} of {dirs.Length} adapters, A and B merged separately (PEFT), rank {maxRank}, {merged.Modules.Count} modules");
                    return 0;
                }

                var vectors = new List<TaskVector>();
                try
                {
                    foreach (var set in loaded)
                        vectors.Add(TaskVectorModule.OfLora(set));
                    err.WriteLine($"[merge] {settings.Describe()} of {vectors.Count} task vectors");
                    using var mergedVector = Merge.Run(settings, vectors);
                    var targetRank = parse.GetValue(rank) ?? maxRank;
                    err.WriteLine($"[merge] truncating to rank {targetRank} by SVD");
                    var truncated = Export.SavePeft(outDir, targetRank, baseModel!, mergedVector);
                    using (truncated.Adapter)
                    {
                        var worst = truncated.Modules.MaxBy(m => m.RelativeError)!;
                        o.WriteLine(FormattableString.Invariant(
                            $"wrote {outDir}: {settings.Describe()} of {dirs.Length} adapters, rank {targetRank} by SVD, {truncated.Modules.Length} modules; relative reconstruction error ‖ΔW − B·A‖/‖ΔW‖ {truncated.RelativeError:G4} (worst module {worst.Path} {worst.RelativeError:G4})"));
                    }
                }
                finally
                {
                    foreach (var v in vectors)
                        v.Dispose();
                }
                return 0;
            }
            finally
            {
                foreach (var set in loaded)
                    set.Dispose();
            }
        });
        return command;
    }

    /// <summary>
    /// The architecture the adapters are for: <c>--model</c>'s config.json, or that of the first adapter's
    /// base_model_name_or_path when it is a checkpoint directory; with the path to record in the output.
    /// </summary>
    static (Qwen2Config Config, string? BaseModel) ModelConfig(string? model, string firstAdapter)
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
                    $"{configPath}: base_model_name_or_path is {(baseModel is null ? "not set" : $"\"{baseModel}\", not a checkpoint directory here")}; pass --model DIR (a checkpoint directory with config.json) for the module shapes.");
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
