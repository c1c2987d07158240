using System.CommandLine;
using LLGBM.Tasks;
using LLGBM.Tasks.Import;
using LLGBM.Tasks.Synthetic;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm tasks …</c>: task directories (task.json, train.jsonl, test.jsonl).</summary>
public static class TasksCommand
{
    /// <summary>Creates the <c>tasks</c> command with every subcommand of <see cref="Subcommands"/>.</summary>
    public static Command Create()
    {
        var command = new Command("tasks", "Task directories: task.json with train.jsonl and test.jsonl.");
        foreach (var subcommand in Subcommands())
            command.Subcommands.Add(subcommand);
        return command;
    }

    /// <summary>The subcommands of <c>tasks</c>, in help order; a new one is added here.</summary>
    public static IReadOnlyList<Command> Subcommands() => [CreateImport(), CreateSynth()];

    /// <summary>Creates <c>tasks import</c>: a public dataset's export (JSONL or Parquet) into a task directory.</summary>
    public static Command CreateImport()
    {
        var format = new Option<string>("--format") { Description = $"Dataset layout: {string.Join(", ", DatasetConverters.Formats)}.", Required = true };
        var input = new Option<string>("--input") { Description = "The training split: a JSONL or .parquet export in the Hugging Face datasets layout.", Required = true };
        var testInput = new Option<string?>("--test-input") { Description = "The held-out split (e.g. the validation export); without it test.jsonl is empty." };
        var output = new Option<string>("--out") { Description = "Task directory to write (task.json, train.jsonl, test.jsonl).", Required = true };
        var name = new Option<string?>("--name") { Description = "Task name (default: the format name)." };
        var domain = new Option<string?>("--domain") { Description = "Task domain (default: math for gsm8k, commonsense for the others)." };
        var force = new Option<bool>("--force") { Description = "Replace a task already in --out." };
        var command = new Command("import", "Converts a public dataset's export (ARC, BoolQ, GSM8K, HellaSwag, OpenBookQA, PIQA, WinoGrande) into a task directory.")
        {
            format, input, testInput, output, name, domain, force,
        };
        CommandAction.Set(command, parse =>
        {
            var dir = parse.GetValue(output)!;
            if (TaskDirectory.IsTaskDirectory(dir) && !parse.GetValue(force))
                throw new LlgbmException($"--out {dir}: a task is already there; pass --force to replace it.");
            var task = TaskImport.Import(
                parse.GetValue(format)!, parse.GetValue(input)!, parse.GetValue(testInput), parse.GetValue(name), parse.GetValue(domain));
            TaskDirectory.Save(dir, task);
            var kind = task.Spec.Kind == TaskKind.MultipleChoice ? "multiple choice" : "generation";
            CommandAction.Out(parse).WriteLine(
                $"wrote {dir}: {task.Spec.Name} ({kind}, {task.Spec.Domain}), {task.Train.Count} train and {task.Test.Count} test examples");
            return 0;
        });
        return command;
    }

    /// <summary>Creates <c>tasks synth</c>: the synthetic benchmark suite as task directories.</summary>
    public static Command CreateSynth()
    {
        var output = new Option<string>("--out") { Description = "Root directory: one task directory per task, and suite.json.", Required = true };
        var seed = new Option<long>("--seed") { Description = "Seed of every example drawn.", DefaultValueFactory = _ => 0 };
        var train = new Option<int>("--train") { Description = "Training examples per task (at least 500 recommended).", DefaultValueFactory = _ => 600 };
        var test = new Option<int>("--test") { Description = "Test examples per task (at least 200 recommended).", DefaultValueFactory = _ => 250 };
        var force = new Option<bool>("--force") { Description = "Rewrite a suite already in --out even when its settings match." };
        var command = new Command("synth", "Writes the synthetic suite: five domains of tasks sharing a format within the domain, parametric families, two-task mixtures and the experiment splits.")
        {
            output, seed, train, test, force,
        };
        CommandAction.Set(command, parse =>
        {
            var root = parse.GetValue(output)!;
            var settings = new SyntheticSuiteSettings { Seed = parse.GetValue(seed), TrainCount = parse.GetValue(train), TestCount = parse.GetValue(test) };
            if (settings.TrainCount <= 0 || settings.TestCount <= 0)
                throw new LlgbmException("--train and --test must be positive.");
            if (!parse.GetValue(force) && SyntheticSuiteFiles.ReadSettings(root) == settings)
            {
                CommandAction.Out(parse).WriteLine($"{root}: the suite with these settings is already there.");
                return 0;
            }
            var tasks = SyntheticSuiteFiles.Write(root, settings);
            var table = new Table().AddColumns("domain", "tasks", "train / test per task");
            foreach (var domain in tasks.GroupBy(t => t.Spec.Domain))
                table.AddRow(domain.Key, string.Join(", ", domain.Select(t => t.Spec.Name)), $"{domain.First().Train.Count} / {domain.First().Test.Count}");
            CommandAction.Write(CommandAction.Out(parse), table);
            CommandAction.Out(parse).WriteLine($"wrote {tasks.Count} tasks and {SyntheticSuite.Splits().Count} splits to {root}");
            return 0;
        });
        return command;
    }
}
