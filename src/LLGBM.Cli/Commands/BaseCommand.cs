using System.CommandLine;
using LLGBM.Checkpoints;
using LLGBM.Model;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm base …</c>: base models as Hugging Face checkpoint directories.</summary>
public static class BaseCommand
{
    /// <summary>Creates the <c>base</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("base", "Base models as Hugging Face checkpoint directories.");
        command.Subcommands.Add(CreateInit());
        return command;
    }

    static Command CreateInit()
    {
        var preset = new Option<string>("--preset") { Description = $"Architecture: {string.Join(", ", Qwen2Presets.All.Keys)}.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (config.json + model.safetensors).", Required = true };
        var seed = new Option<long>("--seed") { Description = "Seed of the N(0, 0.02) initialisation.", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var shard = new Option<long?>("--max-shard-bytes") { Description = "Split the weights into shards of at most this many bytes (with model.safetensors.index.json)." };
        var force = new Option<bool>("--force") { Description = "Replace a checkpoint already in --out." };
        var command = new Command("init", "Writes a freshly initialised Qwen2 model (weights N(0, 0.02), biases 0, norms 1) as a Hugging Face checkpoint.")
        {
            preset, output, seed, dtype, shard, force,
        };
        CommandAction.Set(command, parse =>
        {
            var config = Qwen2Presets.Get(parse.GetValue(preset)!);
            var dir = parse.GetValue(output)!;
            if (File.Exists(Path.Combine(dir, "config.json")) && !parse.GetValue(force))
                throw new LlgbmException($"--out {dir}: a checkpoint is already there; pass --force to replace it.");
            var storage = TorchChoices.Dtype(parse.GetValue(dtype)!);
            using var model = new Qwen2ForCausalLM(config);
            model.InitializeWeights(parse.GetValue(seed));
            Qwen2Checkpoint.Save(model, dir, storage, parse.GetValue(shard) ?? long.MaxValue);
            var parameters = model.parameters().Sum(p => p.numel());
            CommandAction.Out(parse).WriteLine($"wrote {dir}: {parse.GetValue(preset)}, {parameters:N0} parameters, stored as {Qwen2Checkpoint.DtypeName(storage)}");
            return 0;
        });
        return command;
    }
}
