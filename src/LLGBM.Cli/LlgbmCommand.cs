using System.CommandLine;
using LLGBM.Cli.Commands;

namespace LLGBM.Cli;

/// <summary>The <c>llgbm</c> command tree (also used in-process by tests and scripts).</summary>
public static class LlgbmCommand
{
    static readonly LLGBM.Experiments.RunsLayout Layout = LLGBM.Experiments.RunsLayout.Default;

    /// <summary>Creates the root command with every subcommand; floating-point options refuse NaN and ±infinity.</summary>
    public static RootCommand Create()
    {
        var root = new RootCommand(
            "LLGBM: behaviour-supervised LoRA generation for Qwen2-family models. Run a command with --help for its options. " +
            $"Inputs and outputs default to the runs tree that `llgbm pipeline` writes ({Layout.Suite}, {Layout.Base}, {Layout.Teachers}, " +
            $"{Layout.Deltas}, {Layout.Encodings}, {Layout.Generator("RUN")}, …; LLGBM.Experiments.RunsLayout).");
        root.Subcommands.Add(BaseCommand.Create());
        root.Subcommands.Add(ForwardCommand.Create());
        root.Subcommands.Add(DeltaCommand.Create());
        root.Subcommands.Add(DeltasCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(EncodeCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(TasksCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(TeachersCommand.Create());
        root.Subcommands.Add(AdapterCommand.Create());
        root.Subcommands.Add(GeneratorCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(PipelineCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(RetrieveMergeCommand.Create());
        root.Subcommands.Add(MixtureCommand.Create());
        FiniteOptions.Require(root);
        return root;
    }

    /// <summary>Runs the command line <paramref name="args"/>, writing to the given writers; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var invocation = new InvocationConfiguration();
        if (output is not null)
            invocation.Output = output;
        if (error is not null)
            invocation.Error = error;
        return Create().Parse(args).Invoke(invocation);
    }
}
