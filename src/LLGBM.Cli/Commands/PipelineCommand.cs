using System.CommandLine;
using LLGBM.Cli.Pipeline;
using LLGBM.Experiments;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm pipeline</c>: the whole experiment of the embedded default, end to end.</summary>
public static class PipelineCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var quick = new Option<bool>("--quick")
        {
            Description = "The reduced pipeline for CI: every stage, small settings (a few minutes; the numbers mean nothing).",
        };
        var output = new Option<string?>("--out") { Description = "Where every result goes (default: runs, or runs-quick with --quick)." };
        var paper = new Option<string?>("--paper") { Description = "Where the tables and figures go (default: paper, or OUT/paper with --quick)." };
        var noScripts = new Option<bool>("--no-scripts") { Description = "Skip the paper scripts (dotnet fsi)." };
        var jobs = new Option<int>("--jobs")
        {
            Description = "Teacher shards and generator runs trained at once, as child processes sharing the cores (1: one after the other, in process).",
            DefaultValueFactory = _ => Math.Min(2, Environment.ProcessorCount),
        };
        var device = new Option<string?>("--device")
        {
            Description = $"cpu, cuda or cuda:N for every stage (sets {TorchChoices.DeviceVariable}, every command's default --device, " +
                $"for the stages and their child processes; default: the variable's value, else cpu).",
        };
        var command = new Command(
            "pipeline",
            "Runs the whole experiment: synthetic suite, base model, teacher pool, delta cache, delta quality, " +
            "every generator variant and control (three seeds of the main ones), retrieval and merging, task mixtures, " +
            "reworded conditions and fewer teachers, transfer to a second backbone, the probe-design study, the generator benchmark, and the paper tables. " +
            "Finished stages are reused; an interrupted run resumes.")
        {
            quick, output, paper, noScripts, jobs, device,
        };
        CommandAction.Set(command, parse =>
        {
            if (parse.GetValue(device) is { } name)
            {
                TorchChoices.Device(name);
                Environment.SetEnvironmentVariable(TorchChoices.DeviceVariable, name);
            }
            var isQuick = parse.GetValue(quick);
            var root = parse.GetValue(output) ?? (isQuick ? RunsLayout.QuickRoot : RunsLayout.DefaultRoot);
            var paperDir = parse.GetValue(paper) ?? (isQuick ? new RunsLayout(root).Paper : "paper");
            var repository = FindRepository();
            var runner = new PipelineRunner(
                isQuick ? PipelinePlan.Reduced : PipelinePlan.Full,
                root,
                paperDir,
                repository,
                CommandAction.Err(parse),
                !parse.GetValue(noScripts),
                parse.GetValue(jobs));
            return runner.Run();
        });
        return command;
    }

    // The checkout holding configs/ and scripts/: the working directory or one of its parents.
    static string FindRepository()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "configs")) && File.Exists(Path.Combine(dir.FullName, "LLGBM.sln")))
                return dir.FullName;
        throw new LlgbmException("llgbm pipeline reads configs/ and scripts/ of the LLGBM checkout; run it from the repository (or below it).");
    }
}
