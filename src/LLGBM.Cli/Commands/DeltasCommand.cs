using System.CommandLine;
using System.Globalization;
using LLGBM.Delta;
using LLGBM.Experiments;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm deltas …</c>: the content-addressed cache of the teacher pool's delta activations.</summary>
public static class DeltasCommand
{
    /// <summary>Creates the <c>deltas</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("deltas", "Delta activations of the teacher pool, cached by the content of the base, probes, spec and adapter.");
        command.Subcommands.Add(CreateCompute());
        return command;
    }

    static Command CreateCompute()
    {
        var baseModel = new Option<string>("--base")
        {
            Description = "Base checkpoint directory (with its tokenizer).",
            DefaultValueFactory = _ => RunsLayout.Default.Base,
        };
        var teachers = new Option<string>("--teachers")
        {
            Description = "The teacher pool's directory (with its manifest.json).",
            DefaultValueFactory = _ => RunsLayout.Default.Teachers,
        };
        var output = new Option<string>("--out") { Description = "The cache directory.", DefaultValueFactory = _ => RunsLayout.Default.Deltas };
        var measureOptions = new DeltaMeasureOptions();
        var shard = new Option<string>("--shard")
        {
            Description = "i/n: compute only shard i (0-based) of n of the adapters, dealt round-robin.",
            DefaultValueFactory = _ => "0/1",
        };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "compute",
            "Computes the delta (activation or meaning) of every kept teacher adapter (reusing cached entries), " +
            "rebuilds the cache manifest and prints norm statistics, outliers and broken (zero) adapters.")
        {
            baseModel, teachers, output,
        };
        measureOptions.AddTo(command);
        command.Options.Add(shard);
        command.Options.Add(device);
        CommandAction.Set(command, parse =>
        {
            var (index, count) = TeachersCommand.ParseShard(parse.GetValue(shard)!);
            var measure = measureOptions.Measure(parse);
            var err = CommandAction.Err(parse);
            var result = DeltaCache.Compute(
                parse.GetValue(baseModel)!, parse.GetValue(teachers)!, parse.GetValue(output)!, measure, index, count,
                p => err.WriteLine(
                    $"[deltas] {p.Done}/{p.Total} " +
                    $"{p.Adapter}{(p.Reused ? " (cached)" : p.ReplacedBroken ? " (its cached entry held NaN or infinite values: computed again)" : "")}"),
                TorchChoices.Device(parse.GetValue(device)!));
            var stats = result.Stats;
            var outliers = result.Stats.Outliers.Select(e => e.Key).ToHashSet();
            var broken = result.Stats.Broken.Select(e => e.Key).ToHashSet();
            var table = new Table().AddColumns("task", "domain", "step", "norm", "flag");
            foreach (var e in result.Manifest)
            {
                var flag = broken.Contains(e.Key) ? "broken" : outliers.Contains(e.Key) ? "outlier" : "";
                table.AddRow(e.Task, e.Domain, e.Step.ToString(CultureInfo.InvariantCulture), e.Norm.ToString("G4", CultureInfo.InvariantCulture), flag);
            }
            var o = CommandAction.Out(parse);
            CommandAction.Write(o, table);
            o.WriteLine(
                FormattableString.Invariant($"{stats.Count} deltas ({measure}): L2 norm mean {stats.MeanNorm:G4}, min {stats.MinNorm:G4}, ") +
                FormattableString.Invariant(
                    $"max {stats.MaxNorm:G4}, median {stats.MedianNorm:G4}; {stats.Outliers.Count} outliers, {stats.Broken.Count} broken"));
            foreach (var e in stats.Broken)
                o.WriteLine($"broken adapter (delta ~ 0): {e.Adapter}");
            foreach (var e in stats.Outliers)
                o.WriteLine(FormattableString.Invariant($"outlier: {e.Adapter} (norm {e.Norm:G4})"));
            o.WriteLine($"shard {index}/{count}: {result.Computed} computed, {result.Reused} cached; manifest {result.ManifestPath}");
            return 0;
        });
        return command;
    }
}
