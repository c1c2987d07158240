using System.CommandLine;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm delta</c>: the delta activation of an adapter on a base model over a probe set.</summary>
public static class DeltaCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base Hugging Face checkpoint directory.", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "PEFT LoRA adapter directory.", Required = true };
        var probes = new Option<string?>("--probes") { Description = "JSON list of probe texts (or JSONL {\"text\": ...}), tokenized with the model's tokenizer. Default: the 5 generic Alpaca-style probes." };
        var probeIds = new Option<string?>("--probe-ids") { Description = "JSON list of token-id lists, for models without a tokenizer." };
        var layers = new Option<string?>("--layers") { Description = "Comma-separated hidden-state indices (0 embeddings, i after layer i-1, -1 the final-norm state), concatenated. Default: the final-norm state." };
        var average = new Option<bool>("--average-layers") { Description = "Average the --layers instead of concatenating them." };
        var pooling = new Option<string>("--pooling") { Description = "last (the last real token) or mean (over real tokens).", DefaultValueFactory = _ => "last" };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var json = new Option<bool>("--json") { Description = "Print {\"delta\": [...]}." };
        var command = new Command("delta", "Computes the delta activation of an adapter: the mean over probes of the shift it causes in the base model's hidden state of the last probe token.")
        {
            model, adapter, probes, probeIds, layers, average, pooling, dtype, device, json,
        };
        CommandAction.Set(command, parse =>
        {
            var dir = parse.GetValue(model)!;
            var dev = TorchChoices.Device(parse.GetValue(device)!);
            var computeDtype = TorchChoices.Dtype(parse.GetValue(dtype)!);
            if (parse.GetValue(probes) is not null && parse.GetValue(probeIds) is not null)
                throw new LlgbmException("Give --probes or --probe-ids, not both.");
            var spec = new DeltaSpec
            {
                Layers = parse.GetValue(layers) is { } l ? DeltaSpec.ParseLayers(l) : null,
                Combination = parse.GetValue(average) ? LayerCombination.Average : LayerCombination.Concatenate,
                Pooling = parse.GetValue(pooling) switch
                {
                    "last" => DeltaPooling.LastToken,
                    "mean" => DeltaPooling.MeanOverRealTokens,
                    var other => throw new LlgbmException($"--pooling: expected last or mean, found \"{other}\"."),
                },
            };
            var set = parse.GetValue(probeIds) is { } idsFile ? ProbeSet.LoadIds(idsFile)
                : parse.GetValue(probes) is { } textFile ? ProbeSet.Load(textFile)
                : ProbeSet.Generic(5);
            var tokens = set.Texts is null ? set.Tokenize(null) : set.Tokenize(Tokenizers.Load(dir));
            using var lm = Qwen2Checkpoint.Load(dir, dev, computeDtype);
            lm.eval();
            using var lora = PeftAdapter.Load(parse.GetValue(adapter)!, lm.Config, dev, computeDtype).Adapter;
            using var embedder = new DeltaEmbedder(lm, tokens, spec);
            using var delta = embedder.ComputeNoGrad(lora);
            var values = delta.to_type(ScalarType.Float32).cpu().data<float>().ToArray();
            var output = CommandAction.Out(parse);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, float[]> { ["delta"] = values }));
                return 0;
            }
            var norm = Math.Sqrt(values.Sum(v => (double)v * v));
            output.WriteLine($"{dir} + {parse.GetValue(adapter)}: delta over {set.Count} probes ({set.Name}, {spec.Key()}): dim {values.Length}, L2 norm {norm:G6}");
            return 0;
        });
        return command;
    }
}
