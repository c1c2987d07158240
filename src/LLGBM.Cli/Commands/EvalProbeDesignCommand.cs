using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LLGBM.Experiments;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm eval probe-design</c>: the probe-design study of the delta activation (<see cref="ProbeDesignStudy"/>) as
/// JSON and a table.
/// </summary>
public static class EvalProbeDesignCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "Base checkpoint directory (with its tokenizer).", Required = true };
        var teachers = new Option<string>("--teachers") { Description = "The teacher pool's directory (with its manifest.json).", Required = true };
        var tasks = new Option<string>("--tasks")
        {
            Description = "Directory of task directories (the suite): domains, mixtures and the task probes' prompts.",
            Required = true,
        };
        var variants = new Option<string?>("--variants")
        {
            Description = "Comma-separated variant names to run (default: all): generic-5 (the default design), generic-1, generic-10, generic-20, " +
                "tasks-N-S (N training prompts of every task), layers-M,L,-1-concat, layers-M,L,-1-mean (M the middle, L the last layer), pool-mean.",
        };
        var perTask = new Option<int>("--per-task") { Description = "Training prompts per task in the task-probe variant.", DefaultValueFactory = _ => 1 };
        var probeSeed = new Option<long>("--probe-seed") { Description = "Seed of the task probes.", DefaultValueFactory = _ => 0 };
        var checkpoints = new Option<int?>("--checkpoints") { Description = "Use the last N kept checkpoints of each task (default: all)." };
        var output = new Option<string?>("--out") { Description = "Write the results to this JSON file." };
        var json = new Option<bool>("--json") { Description = "Print the JSON results instead of the table." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "probe-design",
            "Probe design of the delta activation on a teacher pool: for each variant (generic probe count, generic or task probes, " +
            "final-norm state or several layers, last token or mean pooling) the silhouette by domain, " +
            "the leave-one-task-out 1-NN accuracy by domain and the compute cost. Deltas are computed in memory; no delta cache is read or written.")
        {
            baseModel, teachers, tasks, variants, perTask, probeSeed, checkpoints, output, json, device,
        };
        CommandAction.Set(command, parse =>
        {
            var err = CommandAction.Err(parse);
            var settings = new ProbeDesignSettings(
                parse.GetValue(baseModel)!, parse.GetValue(teachers)!, parse.GetValue(tasks)!, parse.GetValue(variants),
                parse.GetValue(perTask), parse.GetValue(probeSeed), parse.GetValue(checkpoints), TorchChoices.Device(parse.GetValue(device)!));
            var result = ProbeDesignStudy.Run(settings, line => err.WriteLine($"[probe design] {line}"));
            var text = JsonSerializer.Serialize(result, LlgbmJson.Options);
            return CommandAction.WriteResult(parse, output, json, text, o => WriteTable(o, result));
        });
        return command;
    }

    /// <summary>One row per variant: silhouettes, 1-NN accuracies and cost.</summary>
    public static void WriteTable(TextWriter output, ProbeDesignResult result)
    {
        var table = new Table().AddColumns(
            "variant", "group", "probes", "tokens", "dim", "silhouette (ckpt)", "silhouette (task)", "1-NN (ckpt)", "1-NN (task)", "ms/adapter (median)",
            "ms/adapter (min)");
        foreach (var v in result.Variants)
            table.AddRow(
                Markup.Escape(v.Name), v.Group, v.ProbeCount.ToString(CultureInfo.InvariantCulture), v.ProbeTokens.ToString(CultureInfo.InvariantCulture),
                v.Dimension.ToString(CultureInfo.InvariantCulture), F(v.Silhouettes[0].Silhouette), F(v.Silhouettes[1].Silhouette),
                F(v.NearestCheckpoint.Accuracy), F(v.NearestTask.Accuracy), v.MillisecondsPerAdapter.ToString("F1", CultureInfo.InvariantCulture),
                v.MinMillisecondsPerAdapter.ToString("F1", CultureInfo.InvariantCulture));
        output.WriteLine(
            "Probe design (silhouette: cosine distance over domains; 1-NN: share of adapters whose nearest adapter of another task is of their domain; " +
            "mixtures left out):");
        CommandAction.Write(output, table);
        output.WriteLine($"{result.Adapters} adapters of {result.TaskCount} tasks");
    }

    static string F(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}
