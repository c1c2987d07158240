using System.CommandLine;
using LLGBM.Checkpoints;
using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm adapter …</c>: PEFT LoRA adapter directories.</summary>
public static class AdapterCommand
{
    /// <summary>The tokenizer and generation files <c>merge-into-base</c> copies from the base checkpoint when present.</summary>
    public static readonly IReadOnlyList<string> CopiedFiles =
        ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "generation_config.json"];

    /// <summary>Creates the <c>adapter</c> command and its subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("adapter", "PEFT LoRA adapter directories (adapter_config.json + adapter_model.safetensors).");
        command.Subcommands.Add(CreateMergeIntoBase());
        return command;
    }

    static Command CreateMergeIntoBase()
    {
        var model = new Option<string>("--model") { Description = "Base model: a Hugging Face checkpoint directory.", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "PEFT adapter directory for that model.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write the merged checkpoint to.", Required = true };
        var dtype = new Option<string?>("--dtype")
        {
            Description = "Storage dtype of the merged weights: f32 or bf16 (default: the base checkpoint's torch_dtype).",
        };
        var force = new Option<bool>("--force") { Description = "Replace a checkpoint already in --out." };
        var command = new Command(
            "merge-into-base",
            "Adds the adapter's ΔW = scale · B · A into the base weights and writes the merged model as a Hugging Face checkpoint, " +
            "with the base's tokenizer files.")
        {
            model, adapter, output, dtype, force,
        };
        CommandAction.Set(command, parse =>
        {
            var modelDir = parse.GetValue(model)!;
            var adapterDir = parse.GetValue(adapter)!;
            var outDir = parse.GetValue(output)!;
            if (File.Exists(Path.Combine(outDir, "config.json")) && !parse.GetValue(force))
                throw new LlgbmException($"--out {outDir}: a checkpoint is already there; pass --force to replace it.");
            ScalarType? requested = parse.GetValue(dtype) is { } name ? StorageDtype(name) : null;
            // The merge is computed in float32 whatever the storage dtype, so rounding happens once, on saving.
            using var lm = Qwen2Checkpoint.Load(modelDir, CPU, ScalarType.Float32);
            var storage = requested ?? StoredDtype(lm.Config.TorchDtype);
            var (_, lora) = PeftAdapter.Load(adapterDir, lm.Config);
            using (lora)
                LoraMerge.IntoBase(lm, lora);
            Qwen2Checkpoint.Save(lm, outDir, storage);
            var copied = CopyTokenizerFiles(modelDir, outDir);
            CommandAction.Out(parse).WriteLine(
                $"wrote {outDir}: {adapterDir} merged into {modelDir} ({lora.Modules.Count} modules), stored as {Qwen2Checkpoint.DtypeName(storage)}" +
                (copied.Count > 0 ? $"; copied {string.Join(", ", copied)}" : ""));
            return 0;
        });
        return command;
    }

    static ScalarType StorageDtype(string name) => name switch
    {
        "f32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        _ => throw new LlgbmException($"--dtype {name}: expected f32 or bf16."),
    };

    /// <summary>The dtype a checkpoint's <c>torch_dtype</c> names, float32 when it names none of the stored ones.</summary>
    static ScalarType StoredDtype(string torchDtype) => torchDtype switch
    {
        "bfloat16" => ScalarType.BFloat16,
        "float16" => ScalarType.Float16,
        _ => ScalarType.Float32,
    };

    /// <summary>Copies each of <see cref="CopiedFiles"/> present in <paramref name="from"/>; returns the names copied.</summary>
    static List<string> CopyTokenizerFiles(string from, string to)
    {
        var copied = new List<string>();
        foreach (var name in CopiedFiles)
        {
            var source = Path.Combine(from, name);
            var target = Path.Combine(to, name);
            if (!File.Exists(source) || Path.GetFullPath(source) == Path.GetFullPath(target))
                continue;
            AtomicFile.Write(target, stream =>
            {
                using var input = File.OpenRead(source);
                input.CopyTo(stream);
            });
            copied.Add(name);
        }
        return copied;
    }
}
