using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLGBM.Checkpoints;
using LLGBM.Conditioning;
using LLGBM.Experiments;
using LLGBM.Generators;
using LLGBM.Lora;
using LLGBM.Tasks;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm generate</c>: one PEFT adapter from a trained generator and a batch of prompts.</summary>
public static class GenerateCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var generator = new Option<string>("--generator") { Description = "The generator run directory (llgbm generator train).", Required = true };
        var prompts = new Option<string>("--prompts")
        {
            Description = "The condition: a JSON list of texts, or JSONL of {\"prompt\": …, \"answer\": …} (answers are used when the run was trained on " +
                "prompts with answers).",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "The PEFT adapter directory to write.", Required = true };
        var step = new Option<int?>("--step") { Description = "Use this checkpoint instead of the latest." };
        var encodings = new Option<string?>("--encodings") { Description = "Encoding cache directory (default: none)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => TorchChoices.DefaultDevice };
        var command = new Command(
            "generate",
            "Generates a LoRA adapter for the task the prompts come from, in one forward pass, and writes it as a PEFT adapter directory.")
        {
            generator, prompts, output, step, encodings, device,
        };
        CommandAction.Set(command, parse =>
        {
            var runDir = parse.GetValue(generator)!;
            var config = GeneratorConfig.Load(Path.Combine(runDir, GeneratorRun.ConfigFile));
            var info = GeneratorRun.ReadRunFile(runDir);
            var texts = ReadCondition(parse.GetValue(prompts)!, config.ConditionMode);
            var torchDevice = TorchChoices.Device(parse.GetValue(device)!);
            var modelConfig = Qwen2ConfigOf(info.Inputs.Base);
            var cacheDir = parse.GetValue(encodings) ?? Path.Combine(Path.GetTempPath(), "llgbm-encodings");
            using var encoder = SentenceEncoders.OpenCached(config.Encoder, info.Inputs.Base, config.Seed, cacheDir, torchDevice);
            if (encoder.Identity != info.Encoder)
                throw new LlgbmException($"{runDir}: the run was trained with encoder {info.Encoder}, but {encoder.Identity} is what is available here.");
            using var gen = GeneratorRun.LoadGenerator(runDir, modelConfig, parse.GetValue(step), torchDevice);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var adapter = GeneratorRun.GenerateOne(gen, ConditionEncoding.From(encoder), texts, torchDevice);
            var seconds = clock.Elapsed.TotalSeconds;
            var dir = parse.GetValue(output)!;
            PeftAdapter.Save(dir, info.Lora, adapter, info.Inputs.Base);
            CommandAction.Out(parse).WriteLine(
                $"{dir}: adapter from {texts.Count} prompts ({adapter.Modules.Count} modules, r {info.Lora.Rank}) in {seconds:F3} s");
            return 0;
        });
        return command;
    }

    static Model.Qwen2Config Qwen2ConfigOf(string baseDir)
    {
        var path = Path.Combine(baseDir, "config.json");
        if (!File.Exists(path))
            throw new LlgbmException($"{baseDir}: the generator's base checkpoint has no config.json.");
        return Model.Qwen2Config.Load(path);
    }

    /// <summary>The condition's texts from a JSON list of strings or a JSONL file of prompts (with answers).</summary>
    public static IReadOnlyList<string> ReadCondition(string file, PromptBatchMode mode)
    {
        if (!File.Exists(file))
            throw new LlgbmException($"--prompts {file}: no such file.");
        var lines = TextFiles.ReadAllLines(file);
        var text = string.Join("\n", lines).Trim();
        try
        {
            if (text.StartsWith('['))
                return JsonSerializer.Deserialize<List<string>>(text)
                    ?? throw new LlgbmException($"{file}: expected a JSON list of texts.");
            var result = new List<string>();
            var lineNumber = 0;
            foreach (var line in lines)
            {
                lineNumber++;
                if (line.Trim().Length == 0)
                    continue;
                var node = JsonNode.Parse(line)?.AsObject() ?? throw new LlgbmException($"{file}, line {lineNumber}: expected a JSON object.");
                var prompt = (string?)node["prompt"] ?? throw new LlgbmException($"{file}, line {lineNumber}: no \"prompt\".");
                var answer = (string?)node["answer"];
                if (mode == PromptBatchMode.PromptsWithAnswers && answer is null)
                    throw new LlgbmException($"{file}, line {lineNumber}: the generator was trained on prompts with answers; give \"answer\" too.");
                result.Add(ConditionBank.Text(new PromptBatchItem(lineNumber, prompt, mode == PromptBatchMode.PromptsWithAnswers ? answer : null)));
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{file}: not a JSON list of texts or JSONL of prompts ({e.Message}).");
        }
    }
}
