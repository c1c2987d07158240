using System.CommandLine;
using LLGBM.Experiments;
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
    public static IReadOnlyList<Command> Subcommands() => [CreateImport(), CreateSynth(), CreateMix()];

    /// <summary>Creates <c>tasks import</c>: a public dataset's export (JSONL or Parquet) into a task directory.</summary>
    public static Command CreateImport()
    {
        var format = new Option<string>("--format") { Description = $"Dataset layout: {string.Join(", ", DatasetConverters.Formats)}.", Required = true };
        var input = new Option<string>("--input")
        {
            Description = "The training split: a JSONL or .parquet export in the Hugging Face datasets layout.",
            Required = true,
        };
        var testInput = new Option<string?>("--test-input")
        {
            Description = "The held-out split (e.g. the validation export); without it test.jsonl is empty.",
        };
        var output = new Option<string>("--out") { Description = "Task directory to write (task.json, train.jsonl, test.jsonl).", Required = true };
        var name = new Option<string?>("--name") { Description = "Task name (default: the format name)." };
        var domain = new Option<string?>("--domain") { Description = "Task domain (default: math for gsm8k, commonsense for the others)." };
        var force = new Option<bool>("--force") { Description = "Replace a task already in --out." };
        var command = new Command(
            "import",
            "Converts a public dataset's export (ARC, BoolQ, GSM8K, HellaSwag, OpenBookQA, PIQA, WinoGrande) into a task directory.")
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
        var command = new Command(
            "synth",
            "Writes the synthetic suite: five domains of tasks sharing a format within the domain, parametric families, " +
            "two-task mixtures and the experiment splits.")
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

    /// <summary>Creates <c>tasks mix</c>: the union of two tasks, interleaved, as a task directory of its own.</summary>
    public static Command CreateMix()
    {
        var tasks = new Option<string>("--tasks")
        {
            Description = "The root holding both component task directories.",
            DefaultValueFactory = _ => RunsLayout.Default.Suite,
        };
        var first = new Option<string>("--first") { Description = "The first component task.", Required = true };
        var second = new Option<string>("--second") { Description = "The second component task.", Required = true };
        var output = new Option<string>("--out") { Description = "Root directory the mixture's task directory is written under.", Required = true };
        var name = new Option<string?>("--name") { Description = "The mixture's name (default mix-FIRST+SECOND)." };
        var force = new Option<bool>("--force") { Description = "Replace a different task already there." };
        var command = new Command(
            "mix",
            "Writes the mixture of two tasks: every training and test example of both, interleaved one by one (the first 2n test examples are the first n of " +
            "each component's), as a task directory with both components named.")
        {
            tasks, first, second, output, name, force,
        };
        CommandAction.Set(command, parse =>
        {
            var root = parse.GetValue(tasks)!;
            TaskData Component(string task, string option)
            {
                var dir = Path.Combine(root, PathNames.Validate(task, "the task name", option));
                if (!TaskDirectory.IsTaskDirectory(dir))
                    throw new LlgbmException($"--tasks {root}: no task directory {task} (expected {Path.Combine(dir, TaskDirectory.SpecFileName)}).");
                return TaskDirectory.Load(dir);
            }
            var mixture = TaskMixture.Union(Component(parse.GetValue(first)!, "--first"), Component(parse.GetValue(second)!, "--second"), parse.GetValue(name));
            var target = Path.Combine(parse.GetValue(output)!, mixture.Spec.Name);
            var o = CommandAction.Out(parse);
            if (TaskDirectory.IsTaskDirectory(target) && !parse.GetValue(force))
            {
                if (SameTask(TaskDirectory.Load(target), mixture))
                {
                    o.WriteLine($"{target}: the mixture is already there.");
                    return 0;
                }
                throw new LlgbmException($"--out: {target} holds a different task; pass --force to replace it.");
            }
            TaskDirectory.Save(target, mixture);
            o.WriteLine(
                $"wrote {target}: {mixture.Spec.Name} ({string.Join(" + ", mixture.Spec.Components)}), " +
                $"{mixture.Train.Count} train and {mixture.Test.Count} test examples");
            return 0;
        });
        return command;
    }

    static bool SameTask(TaskData a, TaskData b)
    {
        static string Key(TaskExample e) => $"{e.Prompt}\u0000{e.Answer}\u0000{string.Join("\u0001", e.Choices ?? [])}";
        return a.Spec.Name == b.Spec.Name && a.Spec.Kind == b.Spec.Kind && a.Spec.Components.SequenceEqual(b.Spec.Components)
            && a.Train.Select(Key).SequenceEqual(b.Train.Select(Key)) && a.Test.Select(Key).SequenceEqual(b.Test.Select(Key));
    }
}
