using System.CommandLine;
using LLGBM.Cli.Commands;

var root = new RootCommand(
    "LLGBM: behaviour-supervised LoRA generation for Qwen2-family models. Run a command with --help for its options.");
root.Subcommands.Add(BenchCommand.Create());
return root.Parse(args).Invoke();
