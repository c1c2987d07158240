using System.CommandLine;
using LLGBM.Algebra;
using LLGBM.Experiments;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm merge</c>: merges PEFT adapters (<see cref="AdapterMerge"/>) and reports what it wrote.
/// </summary>
public static class MergeCommand
{
    /// <summary>The accepted <c>--method</c> values.</summary>
    public static readonly string[] MethodChoices = ["linear", "ties", "dare", "dare-ties"];

    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var method = new Option<string>("--method")
        {
            Description = "linear (weighted average), ties (trim, elect sign, disjoint mean), dare (drop and rescale, then average) or dare-ties.",
            Required = true,
        };
        method.AcceptOnlyFromAmong(MethodChoices);
        var adapters = new Option<string[]>("--adapters")
        {
            Description = "The PEFT adapter directories to merge.",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string>("--out") { Description = "Directory to write the merged PEFT adapter to.", Required = true };
        var density = new Option<double>("--density")
        {
            Description = "Fraction of entries kept: TIES's trim density k, DARE's 1 − p.",
            DefaultValueFactory = _ => Merge.DefaultDensity,
        };
        var weights = new Option<double[]>("--weights")
        {
            Description = "Relative weights, one per adapter (default: uniform). linear and dare take the weighted average; " +
                "ties and dare-ties scale each task vector by its weight (normalised to mean 1) before the sign vote.",
            AllowMultipleArgumentsPerToken = true,
        };
        var lambda = new Option<double>("--lambda") { Description = "Scale of the merged task vector (TIES's λ).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long>("--seed") { Description = "Seed of DARE's drop masks.", DefaultValueFactory = _ => 0 };
        var rank = new Option<int?>("--rank")
        {
            Description = "Rank of the written adapter (truncated SVD of each module's merged ΔW); default: the largest rank among the inputs.",
        };
        var factors = new Option<bool>("--factors")
        {
            Description = "Merge the A and B factors separately, as PEFT's add_weighted_adapter does (no SVD; every adapter needs the same rank; " +
                "B·A is then not the merge of the ΔW).",
        };
        var model = new Option<string?>("--model")
        {
            Description = "Base checkpoint directory whose config.json gives the module shapes (default: the first adapter's base_model_name_or_path).",
        };
        var force = new Option<bool>("--force") { Description = "Replace an adapter already in --out." };
        var command = new Command(
            "merge",
            "Merges PEFT LoRA adapters on ΔW = scale · B · A per module (linear, TIES, DARE, DARE-TIES) and writes a PEFT adapter by truncated SVD, " +
            "reporting the relative reconstruction error.")
        {
            method, adapters, output, density, weights, lambda, seed, rank, factors, model, force,
        };
        CommandAction.Set(command, parse =>
        {
            var settings = new AdapterMergeSettings(
                parse.GetValue(adapters) ?? [], parse.GetValue(output)!,
                new Merge.Settings(
                    Merge.Method.Parse(parse.GetValue(method)!), parse.GetValue(density), parse.GetValue(weights) ?? [],
                    parse.GetValue(seed), parse.GetValue(lambda)),
                parse.GetValue(rank), parse.GetValue(factors), parse.GetValue(model), parse.GetValue(force));
            var err = CommandAction.Err(parse);
            var r = AdapterMerge.Run(settings, line => err.WriteLine($"[merge] {line}"));
            CommandAction.Out(parse).WriteLine(r.Factors
                ? $"wrote {r.Out}: {r.Merge} of {r.Adapters} adapters, A and B merged separately (PEFT), rank {r.Rank}, {r.Modules} modules"
                : FormattableString.Invariant($"wrote {r.Out}: {r.Merge} of {r.Adapters} adapters, rank {r.Rank} by SVD, {r.Modules} modules; ") +
                    FormattableString.Invariant(
                        $"relative reconstruction error ‖ΔW − B·A‖/‖ΔW‖ {r.RelativeError:G4} (worst module {r.WorstModule} {r.WorstError:G4})"));
            return 0;
        });
        return command;
    }
}
