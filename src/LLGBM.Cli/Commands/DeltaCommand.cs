using System.CommandLine;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Cli.Commands;

/// <summary>
/// <c>llgbm delta</c>: the delta of an adapter (or of a fully fine-tuned checkpoint) on a base model over a probe set,
/// of either kind: the delta activation or the delta meaning.
/// </summary>
public static class DeltaCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Base Hugging Face checkpoint directory (with its tokenizer for text probes).",
            Required = true,
        };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT LoRA adapter directory, applied to --model." };
        var finetuned = new Option<string?>("--finetuned")
        {
            Description = "Instead of --adapter: a fully fine-tuned checkpoint directory, compared to --model on the same probes (read with --model's " +
                "tokenizer).",
        };
        var measureOptions = new DeltaMeasureOptions();
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var json = new Option<bool>("--json") { Description = "Print {\"delta\": [...]}." };
        var command = new Command(
            "delta",
            "Computes the delta of an adapter or a fine-tuned checkpoint relative to the base model: by default the mean over probes of the shift in the " +
            "hidden state of the last probe token (--kind activation), or the shift in the log-probability of fixed continuations per byte (--kind meaning).")
        {
            model, adapter, finetuned,
        };
        measureOptions.AddTo(command);
        command.Options.Add(dtype);
        command.Options.Add(device);
        command.Options.Add(json);
        CommandAction.Set(command, parse =>
        {
            var dir = parse.GetValue(model)!;
            var (adapterDir, finetunedDir) = (parse.GetValue(adapter), parse.GetValue(finetuned));
            if ((adapterDir is null) == (finetunedDir is null))
                throw new LlgbmException("Give --adapter DIR or --finetuned DIR (one of them).");
            var dev = TorchChoices.Device(parse.GetValue(device)!);
            var computeDtype = TorchChoices.Dtype(parse.GetValue(dtype)!);
            var measure = measureOptions.Measure(parse);
            var tokenizer = measure.NeedsTokenizer ? Tokenizers.Load(dir) : null;
            using var lm = Qwen2Checkpoint.Load(dir, dev, computeDtype);
            lm.eval();
            using var embedder = measure.CreateEmbedder(lm, tokenizer);
            float[] values;
            if (adapterDir is not null)
            {
                using var lora = PeftAdapter.Load(adapterDir, lm.Config, dev, computeDtype).Adapter;
                using var delta = embedder.ComputeNoGrad(lora);
                FiniteCheck.Tensor(delta, $"The {measure.Kind.ToString().ToLowerInvariant()} delta of {adapterDir} on {dir}");
                values = delta.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
            }
            else
            {
                using var other = Qwen2Checkpoint.Load(finetunedDir!, dev, computeDtype);
                other.eval();
                using var delta = embedder.ComputeModel(other);
                FiniteCheck.Tensor(delta, $"The {measure.Kind.ToString().ToLowerInvariant()} delta of {finetunedDir} against {dir}");
                values = delta.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
            }
            var output = CommandAction.Out(parse);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, float[]> { ["delta"] = values }));
                return 0;
            }
            var norm = Math.Sqrt(values.Sum(v => (double)v * v));
            var what = adapterDir is not null ? $"{dir} + {adapterDir}" : $"{finetunedDir} vs {dir}";
            output.WriteLine(
                $"{what}: {measure.Kind.ToString().ToLowerInvariant()} delta over {measure.ProbeCount} probes ({measure}): dim {values.Length}, " +
                $"L2 norm {norm:G6}");
            return 0;
        });
        return command;
    }
}
