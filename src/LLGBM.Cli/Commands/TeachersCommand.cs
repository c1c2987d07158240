using System.CommandLine;
using LLGBM.Experiments;
using LLGBM.Teachers;
using Spectre.Console;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm teachers …</c>: the teacher LoRA pool.</summary>
public static class TeachersCommand
{
    /// <summary>Creates the <c>teachers</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("teachers", "Teacher LoRA adapters: one LoRA SFT run per task, with adapters kept along the run's tail.");
        command.Subcommands.Add(CreateTrain());
        command.Subcommands.Add(CreateManifest());
        return command;
    }

    static Command CreateTrain()
    {
        var defaults = new TeacherTrainingSettings();
        var baseModel = new Option<string>("--base")
        {
            Description = "Base checkpoint directory (with its tokenizer).",
            DefaultValueFactory = _ => RunsLayout.Default.Base,
        };
        var tasks = new Option<string>("--tasks") { Description = "Root of the task directories.", DefaultValueFactory = _ => RunsLayout.Default.Suite };
        var output = new Option<string>("--out") { Description = "The pool's directory.", DefaultValueFactory = _ => RunsLayout.Default.Teachers };
        var only = new Option<string[]>("--task") { Description = "Train only these tasks (repeatable).", AllowMultipleArgumentsPerToken = true };
        var steps = new Option<int>("--steps") { Description = "Optimiser steps per task.", DefaultValueFactory = _ => defaults.Steps };
        var batch = new Option<int>("--batch-size") { Description = "Examples per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => defaults.LearningRate };
        var rank = new Option<int>("--rank") { Description = "LoRA rank r.", DefaultValueFactory = _ => defaults.Lora.Rank };
        var alpha = new Option<double>("--alpha") { Description = "LoRA alpha.", DefaultValueFactory = _ => defaults.Lora.Alpha };
        var targets = new Option<string>("--targets")
        {
            Description = "Comma-separated target modules.",
            DefaultValueFactory = _ => string.Join(',', defaults.Lora.TargetModules),
        };
        var checkpoints = new Option<int>("--checkpoints") { Description = "Adapters kept per task (N).", DefaultValueFactory = _ => defaults.Checkpoints };
        var every = new Option<int>("--every")
        {
            Description = "Steps between kept adapters (K); the last one is the final step.",
            DefaultValueFactory = _ => defaults.Every,
        };
        var seed = new Option<long>("--seed") { Description = "Training seed.", DefaultValueFactory = _ => 0 };
        var evalLimit = new Option<int>("--eval-limit")
        {
            Description = "Test examples scored per kept adapter.",
            DefaultValueFactory = _ => defaults.EvaluationLimit,
        };
        var atOnce = new Option<int>("--at-once")
        {
            Description = "Teachers trained together in one batched forward/backward pass (each with its own examples, loss, " +
                "clipping and optimiser state, so each follows its one-at-a-time run up to rounding); 1 trains them one at a time.",
            DefaultValueFactory = _ => 1,
        };
        var shard = new Option<string>("--shard")
        {
            Description = "i/n: train only shard i (0-based) of n, e.g. one Slurm array task each.",
            DefaultValueFactory = _ => "0/1",
        };
        var init = new Option<string>("--init")
        {
            Description = "How the teachers' A factors start: per-task (each task its own draw), shared (one draw for the whole pool) " +
                "or shared-frozen (that shared A is never trained: LoRA-FA, only B learns).",
            DefaultValueFactory = _ => "per-task",
        };
        init.AcceptOnlyFromAmong("per-task", "shared", "shared-frozen");
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "train",
            "Trains teacher LoRAs (bare prompts, answer-only loss) and writes PEFT adapters, TASK/teacher.json and the pool's manifest.json; " +
            "finished tasks are skipped. Progress goes to standard error: a progress bar per task on a terminal, otherwise a line every 50 steps.")
        {
            baseModel, tasks, output, only, steps, batch, lr, rank, alpha, targets, checkpoints, every, seed, evalLimit, init, atOnce, shard,
            device,
        };
        CommandAction.Set(command, parse =>
        {
            var (index, count) = ParseShard(parse.GetValue(shard)!);
            var training = defaults with
            {
                Lora = defaults.Lora with
                {
                    Rank = parse.GetValue(rank),
                    Alpha = parse.GetValue(alpha),
                    TargetModules = parse.GetValue(targets)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                },
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Checkpoints = parse.GetValue(checkpoints),
                Every = parse.GetValue(every),
                Seed = parse.GetValue(seed),
                EvaluationLimit = parse.GetValue(evalLimit),
                Initialisation = parse.GetValue(init) switch
                {
                    "shared" => TeacherInitialisation.Shared,
                    "shared-frozen" => TeacherInitialisation.SharedFrozen,
                    _ => TeacherInitialisation.PerTask,
                },
                Device = TorchChoices.Device(parse.GetValue(device)!),
            };
            var err = CommandAction.Err(parse);
            var selected = parse.GetValue(only);
            var settings = new TeacherPoolSettings
            {
                BaseModel = parse.GetValue(baseModel)!,
                TasksRoot = parse.GetValue(tasks)!,
                Output = parse.GetValue(output)!,
                Training = training,
                Tasks = selected is { Length: > 0 } ? selected : null,
                ShardIndex = index,
                ShardCount = count,
                TeachersAtOnce = parse.GetValue(atOnce),
            };
            var manifests = StepProgress.Run(err, "teachers", 50, progress => TeacherPool.Train(
                settings,
                p => progress.Step(new StepReport(p.Task, p.Step, p.TotalSteps, p.Loss)),
                line => progress.Line($"[teachers] {line}")), hideCompleted: true);
            // The base model's instructed accuracy per task, when it was pretrained here: what the teachers should recover.
            var instructed = Pretraining.BaseModelBuilder.ReadReport(settings.BaseModel)?.Evaluations
                .Where(e => e.Format == "instructed")
                .ToDictionary(e => e.Task, e => e.Accuracy) ?? [];
            var table = new Table().AddColumns(
                "task", "domain", "adapters", "last train loss", "teacher accuracy (bare)", "base accuracy (instructed)", "training s");
            foreach (var m in manifests)
            {
                var last = m.Checkpoints[^1];
                var reference = instructed.TryGetValue(m.Task, out var a) ? $"{a:P1}" : "-";
                table.AddRow(
                    m.Task, last.Domain, m.Checkpoints.Count.ToString(), $"{last.TrainLoss:F4}", $"{last.TestAccuracy:P1}", reference,
                    $"{m.TrainingSeconds:F1}");
            }
            CommandAction.Write(CommandAction.Out(parse), table);
            var compared = manifests.Where(m => instructed.ContainsKey(m.Task)).ToList();
            if (compared.Count > 0)
            {
                var teacherMean = compared.Average(m => m.Checkpoints[^1].TestAccuracy);
                var baseMean = compared.Average(m => instructed[m.Task]);
                CommandAction.Out(parse).WriteLine(
                    $"over {compared.Count} tasks: teachers {teacherMean:P1} without instructions, " +
                    $"the base {baseMean:P1} with them ({teacherMean / baseMean:P0} of it)");
            }
            CommandAction.Out(parse).WriteLine(
                $"{settings.Output}: {manifests.Count} tasks in shard {index}/{count}, {manifests.Sum(m => m.Checkpoints.Count)} adapters; " +
                $"manifest {TeacherPool.ManifestName}");
            return 0;
        });
        return command;
    }

    static Command CreateManifest()
    {
        var output = new Option<string>("--out") { Description = "The pool's directory.", DefaultValueFactory = _ => RunsLayout.Default.Teachers };
        var command = new Command("manifest", "Merges the per-task manifests of every shard into the pool's manifest.json.") { output };
        CommandAction.Set(command, parse =>
        {
            var dir = parse.GetValue(output)!;
            if (!Directory.Exists(dir))
                throw new LlgbmException($"--out {dir}: no such teacher pool directory.");
            var manifests = TeacherPool.WriteManifest(dir);
            CommandAction.Out(parse).WriteLine(
                $"{dir}/{TeacherPool.ManifestName}: {manifests.Count} tasks, {manifests.Sum(m => m.Checkpoints.Count)} adapters");
            return 0;
        });
        return command;
    }

    /// <summary>Parses "i/n" (0 ≤ i &lt; n).</summary>
    public static (int Index, int Count) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out var i) && int.TryParse(parts[1], out var n) && n > 0 && i >= 0 && i < n)
            return (i, n);
        throw new LlgbmException($"--shard {text}: expected i/n with 0 ≤ i < n, e.g. 0/4.");
    }
}
