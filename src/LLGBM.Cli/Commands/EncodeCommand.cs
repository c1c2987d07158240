using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LLGBM.Conditioning;
using static TorchSharp.torch;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm encode</c>: texts through a condition encoder, with their pairwise cosine similarities.</summary>
public static class EncodeCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var encoder = new Option<string>("--encoder")
        {
            Description = $"minilm (pretrained all-MiniLM-L6-v2, the default), lm-mean (the mean final-norm hidden state of --model), " +
                $"random (untrained embeddings; ablation only).",
            DefaultValueFactory = _ => SentenceEncoders.Default,
        };
        var texts = new Option<string[]>("--text") { Description = "A text to encode (repeat for several).", AllowMultipleArgumentsPerToken = false };
        var file = new Option<string?>("--file") { Description = "A UTF-8 file with one text per non-empty line." };
        var model = new Option<string?>("--model") { Description = "The base checkpoint for --encoder lm-mean." };
        var seed = new Option<long>("--seed") { Description = "The seed of --encoder random.", DefaultValueFactory = _ => 0 };
        var cache = new Option<string?>("--cache")
        {
            Description = "An encoding cache directory: texts found there are not encoded again, new ones are stored.",
        };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype of lm-mean: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var device = new Option<string>("--device")
        {
            Description = "Where lm-mean runs: cpu, cuda or cuda:N.",
            DefaultValueFactory = _ => TorchChoices.DefaultDevice,
        };
        var json = new Option<bool>("--json") { Description = "Print {\"encoder\", \"identity\", \"dimension\", \"vectors\": [[...]], \"cosine\": [[...]]}." };
        var command = new Command(
            "encode",
            "Encodes texts with a condition encoder and prints each encoding's norm and the pairwise cosine similarities (or, with --json, the vectors).")
        {
            encoder, texts, file, model, seed, cache, dtype, device, json,
        };
        CommandAction.Set(command, parse =>
        {
            var inputs = new List<string>(parse.GetValue(texts) ?? []);
            if (parse.GetValue(file) is { } path)
                inputs.AddRange(ReadLines(path));
            if (inputs.Count == 0)
                throw new LlgbmException("give the texts to encode with --text TEXT (repeatable) or --file FILE.");
            var name = parse.GetValue(encoder)!;
            ISentenceEncoder chosen = SentenceEncoders.Create(
                name, parse.GetValue(model), parse.GetValue(seed), TorchChoices.Device(parse.GetValue(device)!), TorchChoices.Dtype(parse.GetValue(dtype)!));
            if (parse.GetValue(cache) is { } cacheDir)
                chosen = new CachedSentenceEncoder(chosen, new EncodingCache(cacheDir));
            using var active = chosen;
            var clock = Stopwatch.StartNew();
            using var encodings = active.Encode(inputs);
            var seconds = clock.Elapsed.TotalSeconds;
            using var unit = SentencePooling.L2Normalize(encodings);
            using var cosine = unit.matmul(unit.t());
            var vectors = Rows(encodings);
            var cosines = Rows(cosine);
            var err = CommandAction.Err(parse);
            var cacheNote = active is CachedSentenceEncoder c ? $"; cache: {c.MemoryHits + c.DiskHits} hit(s), {c.Misses} encoded" : "";
            err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{inputs.Count} text(s) encoded by {active.Name} (D = {active.Dimension}) in {seconds:F3} s " +
                $"({inputs.Count / Math.Max(seconds, 1e-9):F1} texts/s){cacheNote}"));
            var output = CommandAction.Out(parse);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["encoder"] = active.Name,
                    ["identity"] = active.Identity,
                    ["dimension"] = active.Dimension,
                    ["vectors"] = vectors,
                    ["cosine"] = cosines,
                }));
                return 0;
            }
            output.WriteLine($"encoder {active.Name}: {active.Identity}");
            for (var i = 0; i < inputs.Count; i++)
            {
                var norm = Math.Sqrt(vectors[i].Sum(v => (double)v * v));
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{i}] norm {norm:F4}  {JsonSerializer.Serialize(inputs[i], Quoted)}"));
            }
            if (inputs.Count > 1)
            {
                output.WriteLine("cosine similarities:");
                output.WriteLine("     " + string.Concat(Enumerable.Range(0, inputs.Count).Select(j => $"{$"[{j}]",8}")));
                for (var i = 0; i < inputs.Count; i++)
                    output.WriteLine($"{$"[{i}]",-5}" + string.Concat(cosines[i].Select(v => v.ToString("F4", CultureInfo.InvariantCulture).PadLeft(8))));
            }
            return 0;
        });
        return command;
    }

    /// <summary>Texts as JSON string literals with only what JSON needs escaped, so that quotes and arrows show as they are.</summary>
    static readonly JsonSerializerOptions Quoted = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static float[][] Rows(Tensor matrix)
    {
        using var cpu = matrix.to(ScalarType.Float32).cpu().contiguous();
        var columns = (int)cpu.shape[1];
        var values = cpu.data<float>().ToArray();
        return [.. Enumerable.Range(0, (int)cpu.shape[0]).Select(r => values.AsSpan(r * columns, columns).ToArray())];
    }

    static IEnumerable<string> ReadLines(string path)
    {
        if (!File.Exists(path))
            throw new LlgbmException($"--file {path}: no such file.");
        return [.. TextFiles.ReadAllLines(path).Where(line => line.Trim().Length > 0)];
    }
}
