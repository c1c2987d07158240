using System.CommandLine;
using System.Text.Json;
using LLGBM.Checkpoints;
using LLGBM.Lora;
using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm forward</c>: one forward pass of a checkpoint on given token ids.</summary>
public static class ForwardCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Hugging Face checkpoint directory (config.json + model.safetensors or shards).",
            Required = true,
        };
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids, e.g. 1,2,3.", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var adapter = new Option<string?>("--adapter")
        {
            Description = "PEFT LoRA adapter directory to apply (adapter_config.json + adapter_model.safetensors).",
        };
        var json = new Option<bool>("--json") { Description = "Print {\"hidden_last\": [[...] per position], \"logits\": [[...] per position]}." };
        var command = new Command(
            "forward",
            "Runs the model (with a LoRA adapter when --adapter is given) on token ids and prints the final-norm hidden states and logits of every position.")
        {
            model, ids, adapter, dtype, device, json,
        };
        CommandAction.Set(command, parse =>
        {
            var tokens = ParseIds(parse.GetValue(ids)!);
            var dir = parse.GetValue(model)!;
            var dev = TorchChoices.Device(parse.GetValue(device)!);
            var computeDtype = TorchChoices.Dtype(parse.GetValue(dtype)!);
            using var lm = Qwen2Checkpoint.Load(dir, dev, computeDtype);
            using var lora = parse.GetValue(adapter) is { } adapterDir ? PeftAdapter.Load(adapterDir, lm.Config, dev, computeDtype).Adapter : null;
            var outOfRange = tokens.Where(t => t < 0 || t >= lm.Config.VocabSize).ToList();
            if (outOfRange.Count > 0)
                throw new LlgbmException($"--ids: token ids must lie in [0, {lm.Config.VocabSize}) for {dir}; found {string.Join(", ", outOfRange)}.");
            if (tokens.Length > lm.Config.MaxPositionEmbeddings)
                throw new LlgbmException(
                    $"--ids: {tokens.Length} token ids, more than the max_position_embeddings {lm.Config.MaxPositionEmbeddings} of " +
                    $"{Path.Combine(dir, "config.json")}.");
            using var noGrad = no_grad();
            using var input = tensor(tokens, [1, tokens.Length], device: dev);
            using var output = lm.Forward(input, new ForwardOptions { Lora = lora });
            using var hidden = output.HiddenLast[0].to_type(ScalarType.Float32).cpu();
            using var logits = output.Logits![0].to_type(ScalarType.Float32).cpu();
            FiniteCheck.Tensor(hidden, $"The final hidden states of {dir} on --ids");
            FiniteCheck.Tensor(logits, $"The logits of {dir} on --ids");
            if (parse.GetValue(json))
            {
                WriteJson(CommandAction.Out(parse), hidden, logits);
                return 0;
            }
            CommandAction.Out(parse).WriteLine(
                $"{dir}: {tokens.Length} tokens, hidden_last [{string.Join(", ", hidden.shape)}], logits [{string.Join(", ", logits.shape)}]");
            var (values, indexes) = logits[-1].topk(Math.Min(5, (int)logits.shape[1]));
            using var topValues = values;
            using var topIndexes = indexes;
            var best = topIndexes.data<long>().ToArray();
            var scores = topValues.data<float>().ToArray();
            CommandAction.Out(parse).WriteLine($"most likely next tokens: {string.Join(", ", best.Zip(scores, (t, s) => $"{t} ({s:F3})"))}");
            return 0;
        });
        return command;
    }

    /// <summary>Parses "1,2,3" into token ids.</summary>
    public static long[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
            throw new LlgbmException("--ids: expected at least one token id, e.g. --ids 1,2,3.");
        return parts.Select(p => long.TryParse(p, out var id) ? id : throw new LlgbmException($"--ids: \"{p}\" is not an integer token id.")).ToArray();
    }

    static void WriteJson(TextWriter output, Tensor hidden, Tensor logits)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            WriteMatrix(writer, "hidden_last", hidden);
            WriteMatrix(writer, "logits", logits);
            writer.WriteEndObject();
        }
        output.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        output.Flush();
    }

    static void WriteMatrix(Utf8JsonWriter writer, string name, Tensor matrix)
    {
        var (rows, cols) = (matrix.shape[0], matrix.shape[1]);
        var values = matrix.contiguous().data<float>().ToArray();
        writer.WriteStartArray(name);
        for (var r = 0; r < rows; r++)
        {
            writer.WriteStartArray();
            for (var c = 0; c < cols; c++)
                writer.WriteNumberValue(values[r * cols + c]);
            writer.WriteEndArray();
        }
        writer.WriteEndArray();
    }
}
