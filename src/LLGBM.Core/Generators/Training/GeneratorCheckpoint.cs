using System.Globalization;
using System.Text.Json;
using LLGBM.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A generator run's checkpoints: <c>checkpoints/step-NNNNN/</c> holds <c>generator.safetensors</c> (parameters and
/// buffers by name), <c>optimizer.bin</c> (the AdamW state) and <c>state.json</c>; <c>checkpoints/latest</c> names the
/// newest complete one and is rewritten (atomically) only after its directory is complete, so an interrupted save
/// never hides the previous checkpoint.
/// </summary>
public static class GeneratorCheckpoint
{
    /// <summary>The folder of checkpoints inside a run.</summary>
    public const string Folder = "checkpoints";

    /// <summary>The weights file of a checkpoint.</summary>
    public const string WeightsFile = "generator.safetensors";

    /// <summary>The optimiser state file of a checkpoint.</summary>
    public const string OptimizerFile = "optimizer.bin";

    /// <summary>The directory of the checkpoint at <paramref name="step"/>.</summary>
    public static string StepDir(string runDir, int step) =>
        Path.Combine(runDir, Folder, "step-" + step.ToString("D5", CultureInfo.InvariantCulture));

    /// <summary>Writes the checkpoint of <paramref name="step"/> and points <c>latest</c> at it.</summary>
    public static void Save(string runDir, int step, nn.Module generator, TorchSharp.Modules.OptimizerHelper? optimizer)
    {
        var dir = StepDir(runDir, step);
        Directory.CreateDirectory(dir);
        var tensors = generator.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter))
            .Concat(generator.named_buffers().Select(b => new KeyValuePair<string, Tensor>(b.name, b.buffer)));
        SafetensorsWriter.Save(
            Path.Combine(dir, WeightsFile), tensors, new Dictionary<string, string> { ["step"] = step.ToString(CultureInfo.InvariantCulture) });
        if (optimizer is not null)
        {
            var temp = Path.Combine(dir, OptimizerFile + AtomicFile.TempSuffix);
            optimizer.save_state_dict(temp);
            File.Move(temp, Path.Combine(dir, OptimizerFile), overwrite: true);
        }
        AtomicFile.WriteText(Path.Combine(dir, "state.json"), JsonSerializer.Serialize(new { step }));
        AtomicFile.WriteText(Path.Combine(runDir, Folder, "latest"), Path.GetFileName(dir));
    }

    /// <summary>The step of the newest complete checkpoint, or null when there is none.</summary>
    public static int? LatestStep(string runDir)
    {
        var pointer = Path.Combine(runDir, Folder, "latest");
        if (!File.Exists(pointer))
            return null;
        var name = File.ReadAllText(pointer).Trim();
        if (!name.StartsWith("step-", StringComparison.Ordinal) || !int.TryParse(name[5..], CultureInfo.InvariantCulture, out var step))
            throw new LlgbmException($"{pointer}: expected a checkpoint name such as step-00100, found \"{name}\".");
        if (!File.Exists(Path.Combine(StepDir(runDir, step), WeightsFile)))
            throw new LlgbmException($"{pointer}: names {name}, which has no {WeightsFile}.");
        return step;
    }

    /// <summary>
    /// Loads the weights (and, when given, the optimiser state) of the checkpoint at <paramref name="step"/> into
    /// <paramref name="generator"/>; every parameter and buffer must be present with its shape.
    /// </summary>
    public static void Load(string runDir, int step, nn.Module generator, TorchSharp.Modules.OptimizerHelper? optimizer = null)
    {
        var dir = StepDir(runDir, step);
        var path = Path.Combine(dir, WeightsFile);
        using var reader = SafetensorsReader.Open(path);
        using (no_grad())
            foreach (var (name, target) in generator.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
                .Concat(generator.named_buffers().Select(b => (b.name, b.buffer))))
            {
                using var value = reader.Read(name);
                if (!value.shape.SequenceEqual(target.shape))
                    throw new LlgbmException(
                        $"{path}: tensor {name} is [{string.Join(", ", value.shape)}] but the generator's is [{string.Join(", ", target.shape)}]; " +
                        $"the checkpoint belongs to another configuration.");
                target.copy_(value);
            }
        if (optimizer is not null)
        {
            var state = Path.Combine(dir, OptimizerFile);
            if (!File.Exists(state))
                throw new LlgbmException($"{dir}: no {OptimizerFile} to resume the optimiser from.");
            optimizer.load_state_dict(state);
        }
    }
}
