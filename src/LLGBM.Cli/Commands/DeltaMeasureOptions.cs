using System.CommandLine;
using LLGBM.Delta;
using LLGBM.Tasks;

namespace LLGBM.Cli.Commands;

/// <summary>
/// The options that choose what a delta measures, shared by <c>llgbm delta</c> and <c>llgbm deltas compute</c>: the
/// kind (activation or meaning), the probes (a file, the generic probes, or examples of a task suite) and the kind's
/// settings. Options of the other kind are refused.
/// </summary>
public sealed class DeltaMeasureOptions
{
    /// <summary>The accepted <c>--kind</c> values.</summary>
    public static readonly string[] KindChoices = ["activation", "meaning"];

    readonly Option<string> kind = new("--kind")
    {
        Description = "activation: the shift in the base model's hidden state on probe texts; meaning: the shift in the log-probability of fixed " +
            "continuations of probe prompts, per UTF-8 byte (comparable across backbones).",
        DefaultValueFactory = _ => "activation",
    };

    readonly Option<string?> probes = new("--probes")
    {
        Description = "activation: JSON list of probe texts (or JSONL {\"text\": ...}), tokenized with the base's tokenizer.",
    };
    readonly Option<string?> probeIds = new("--probe-ids") { Description = "activation: JSON list of token-id lists, for models without a tokenizer." };
    readonly Option<string?> meaningProbes = new("--meaning-probes")
    {
        Description = "meaning: JSON list of {\"prompt\": ..., \"continuation\": ...} (or JSONL of such objects).",
    };
    readonly Option<string?> probeTasks = new("--probe-tasks")
    {
        Description = "Draw the probes from the training examples of every task under this directory: the bare prompts (activation) " +
            "or each prompt with its right answer as continuation (meaning).",
    };
    readonly Option<int> perTask = new("--per-task") { Description = "Examples per task with --probe-tasks.", DefaultValueFactory = _ => 4 };
    readonly Option<long> probeSeed = new("--probe-seed") { Description = "Seed of the examples drawn with --probe-tasks.", DefaultValueFactory = _ => 0 };
    readonly Option<int> generic = new("--generic")
    {
        Description = "Without a probe file or --probe-tasks: the first N generic Alpaca-style probes (meaning: each followed by 5 fixed continuations).",
        DefaultValueFactory = _ => 5,
    };
    readonly Option<string?> layers = new("--layers")
    {
        Description = "activation: comma-separated hidden-state indices (0 embeddings, i after layer i-1, -1 the final-norm state), concatenated. " +
            "Default: the final-norm state.",
    };
    readonly Option<bool> average = new("--average-layers") { Description = "activation: average the --layers instead of concatenating them." };
    readonly Option<string> pooling = new("--pooling")
    {
        Description = "activation: last (the last real token) or mean (over real tokens).",
        DefaultValueFactory = _ => "last",
    };
    readonly Option<string> normalize = new("--normalize")
    {
        Description = "meaning: divide each continuation's log-probability by its length in bytes (UTF-8), chars, tokens, or none.",
        DefaultValueFactory = _ => "bytes",
    };

    /// <summary>Creates the options; add them to a command with <see cref="AddTo"/>.</summary>
    public DeltaMeasureOptions()
    {
        kind.AcceptOnlyFromAmong(KindChoices);
        normalize.AcceptOnlyFromAmong(EvalCommand.NormalizationChoices);
    }

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
                 { kind, probes, probeIds, meaningProbes, probeTasks, perTask, probeSeed, generic, layers, average, pooling, normalize })
            command.Options.Add(option);
    }

    /// <summary>The measure the parsed options describe.</summary>
    /// <exception cref="LlgbmException">Options conflict or belong to the other kind, or a value is malformed.</exception>
    public DeltaMeasure Measure(ParseResult parse)
    {
        var isMeaning = parse.GetValue(kind) == "meaning";
        var foreign = isMeaning ? new Option[] { probes, probeIds, layers, average, pooling } : [meaningProbes, normalize];
        if (foreign.FirstOrDefault(o => Given(parse, o)) is { } wrong)
            throw new LlgbmException($"{wrong.Name} does not apply to --kind {parse.GetValue(kind)}.");
        var sources = new Option[] { probes, probeIds, meaningProbes, probeTasks }.Where(o => Given(parse, o)).ToList();
        if (sources.Count > 1)
            throw new LlgbmException($"Give one probe source, not {string.Join(" and ", sources.Select(o => o.Name))}.");
        if (!Given(parse, probeTasks) && (Given(parse, perTask) || Given(parse, probeSeed)))
            throw new LlgbmException("--per-task and --probe-seed apply to --probe-tasks.");
        if (sources.Count > 0 && Given(parse, generic))
            throw new LlgbmException($"--generic applies only when no probe source is given (found {sources[0].Name}).");
        var tasks = parse.GetValue(probeTasks) is { } root ? TaskSuite.LoadAll(root) : null;
        if (tasks is { Count: 0 })
            throw new LlgbmException($"--probe-tasks {parse.GetValue(probeTasks)}: no task directories found.");
        if (isMeaning)
        {
            var set = parse.GetValue(meaningProbes) is { } file ? MeaningProbeSet.Load(file)
                : tasks is not null ? MeaningProbeSet.FromTasks(tasks, parse.GetValue(perTask), parse.GetValue(probeSeed))
                : MeaningProbeSet.Generic(parse.GetValue(generic));
            return DeltaMeasure.Meaning(set, new MeaningDeltaSpec { Normalization = EvalCommand.Normalization(parse.GetValue(normalize)!) });
        }
        var spec = new DeltaSpec
        {
            Layers = parse.GetValue(layers) is { } l ? DeltaSpec.ParseLayers(l) : null,
            Combination = parse.GetValue(average) ? LayerCombination.Average : LayerCombination.Concatenate,
            Pooling = parse.GetValue(pooling) switch
            {
                "last" => DeltaPooling.LastToken,
                "mean" => DeltaPooling.MeanOverRealTokens,
                var other => throw new LlgbmException($"--pooling: expected last or mean, found \"{other}\"."),
            },
        };
        var probeSet = parse.GetValue(probeIds) is { } idsFile ? ProbeSet.LoadIds(idsFile)
            : parse.GetValue(probes) is { } textFile ? ProbeSet.Load(textFile)
            : tasks is not null ? ProbeSet.FromTasks(tasks, parse.GetValue(perTask), parse.GetValue(probeSeed))
            : ProbeSet.Generic(parse.GetValue(generic));
        return DeltaMeasure.Activation(probeSet, spec);
    }

    static bool Given(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };
}
