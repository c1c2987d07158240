using System.Text.Json;
using LLGBM.Generators;
using LLGBM.Lora;
using LLGBM.Tasks;
using LLGBM.Tasks.Synthetic;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>One method on one task under one rewrite of the condition texts.</summary>
/// <param name="Run">The run directory's name.</param>
/// <param name="Name">The run's config name (with its seed suffix).</param>
/// <param name="Seed">The run's seed.</param>
/// <param name="Method"><c>generated</c>, or a reference method (<c>base</c>, <c>oracle</c>, <c>mean-teacher</c>) that ignores the condition.</param>
/// <param name="Task">The task.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Split"><c>held-out</c> or <c>in-domain</c> (a training task: fresh conditions, test examples).</param>
/// <param name="Transform">How the condition texts were rewritten.</param>
/// <param name="Accuracies">Accuracy per evaluation condition (one entry for the reference methods).</param>
/// <param name="Mean">Mean accuracy.</param>
/// <param name="N">Test examples per evaluation.</param>
/// <param name="DeltaCosine">Mean cosine between the adapters' deltas and the oracle teacher's (null for the base).</param>
/// <param name="AdapterCosine">Generated only: mean cosine between the ΔW of the adapter from the rewritten condition and the ΔW of the adapter from the same
/// examples' original texts.</param>
public sealed record RobustnessResult(
    string Run, string Name, long Seed, string Method, string Task, string Domain, string Split, PromptTransform Transform,
    IReadOnlyList<double> Accuracies, double Mean, int N, double? DeltaCosine, double? AdapterCosine);

/// <summary>
/// Robustness of a trained generator to condition texts worded or laid out unlike its training prompts: for each task
/// it is evaluated on (the held-out tasks and the in-domain sample of <see cref="GeneratorRun.Evaluate"/>), the same
/// evaluation conditions (the same examples of the task's condition pool, drawn with <see cref="GeneratorEvaluator.ConditionSeed"/>)
/// are encoded as the suite writes them and rewritten by <see cref="SyntheticPromptRewriter"/>; each condition's
/// adapter is scored on the task's standard test examples, so only the condition changes. The original accuracies are
/// those of the run's <c>results/heldout.json</c> when it is of the checkpoint evaluated (the same conditions, adapters
/// and examples), and the reference methods, which ignore the condition, are copied from it under every rewrite.
/// </summary>
public static class RobustnessEvaluator
{
    /// <summary>The reference methods reported beside the generated adapters.</summary>
    public static readonly IReadOnlyList<string> ReferenceMethods =
        [.. new[] { ReferenceMethod.Base, ReferenceMethod.Oracle, ReferenceMethod.MeanTeacher }.Select(m => m.Name())];

    /// <summary>Evaluates the run <paramref name="runDir"/> at its latest checkpoint under every transform of <paramref name="transforms"/>.</summary>
    public static IReadOnlyList<RobustnessResult> EvaluateRun(
        string runDir, ConditionEncoding encoding, IReadOnlyList<PromptTransform> transforms, Action<string>? log = null, Device? device = null)
    {
        var config = GeneratorConfig.Load(Path.Combine(runDir, GeneratorRun.ConfigFile));
        var info = GeneratorRun.ReadRunFile(runDir);
        if (info.Encoder != encoding.Identity)
            throw new LlgbmException($"{runDir}: the run was trained with encoder {info.Encoder}, not {encoding.Identity}.");
        var step = GeneratorCheckpoint.LatestStep(runDir) ?? throw new LlgbmException($"{runDir}: no checkpoint to evaluate; train the run first.");
        var heldOutPath = Path.Combine(runDir, GeneratorRun.ResultsFolder, GeneratorRun.HeldOutFile);
        var previous = File.Exists(heldOutPath) ? GeneratorRun.ReadResults(heldOutPath) : null;
        if (previous is not null && previous.Step != step)
            previous = null;
        using var data = GeneratorData.Load(info.Inputs, config, encoding.Encode, encoding.Identity, log, device);
        using var generator = GeneratorRun.LoadGenerator(runDir, data.Model.Config, step, device);
        var run = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)));
        var results = new List<RobustnessResult>();
        var inDomain = GeneratorRun.InDomainSample(data.TrainTasks, config.InDomainTasks);
        foreach (var (task, split) in data.TestTasks.Select(t => (t, "held-out")).Concat(inDomain.Select(t => (t, "in-domain"))))
        {
            var earlier = previous?.Results.Where(r => r.Task == task.Spec.Name && r.Split == split).ToList() ?? [];
            foreach (var reference in ReferenceMethods)
                if (earlier.FirstOrDefault(r => r.Method == reference) is { } r)
                    results.AddRange(transforms.Select(t => new RobustnessResult(
                        run, config.Name, config.Seed, reference, r.Task, r.Domain, split, t, r.Accuracies, r.Mean, r.N, r.DeltaCosine, null)));
            var generated = EvaluateTask(generator, data, config, encoding, task, transforms, earlier.FirstOrDefault(r => r.Method == "generated"));
            results.AddRange(generated.Select(g => new RobustnessResult(
                run, config.Name, config.Seed, "generated", task.Spec.Name, task.Spec.Domain, split, g.Transform, g.Accuracies, g.Accuracies.Average(),
                g.N, g.DeltaCosine, g.AdapterCosine)));
            log?.Invoke($"  {split,-9} {task.Spec.Name,-14} " + string.Join("  ", generated.Select(g =>
                $"{g.Transform.ToString().ToLowerInvariant()} {g.Accuracies.Average():P1} (ΔW-cos {g.AdapterCosine:F2})")));
        }
        return results;
    }

    /// <summary>The generated adapters' results on one task under each transform.</summary>
    public sealed record TaskOutcome(PromptTransform Transform, IReadOnlyList<double> Accuracies, int N, double DeltaCosine, double AdapterCosine);

    /// <summary>
    /// Generates the adapters of <paramref name="task"/>'s evaluation conditions from the original and the rewritten
    /// texts and scores each; <paramref name="original"/>, when given, supplies the original accuracies.
    /// </summary>
    public static IReadOnlyList<TaskOutcome> EvaluateTask(
        LoraGenerator generator, GeneratorData data, GeneratorConfig config, ConditionEncoding encoding, TaskData task,
        IReadOnlyList<PromptTransform> transforms, MethodTaskResult? original = null)
    {
        var name = task.Spec.Name;
        var items = PromptBatches.Sample(task, Math.Min(config.ConditionPool, task.Train.Count), config.Seed, config.ConditionMode).Items;
        var pooled = data.Conditions.Texts(name);
        for (var i = 0; i < items.Count; i++)
            if (SyntheticPromptRewriter.Text(items[i].Prompt, items[i].Answer, PromptTransform.Original) != pooled[i])
                throw new LlgbmException(
                    $"Robustness of task {name}: the condition pool's text {i} (\"{pooled[i]}\") is not the example drawn again (\"{items[i].Prompt}\").");
        var seeds = Enumerable.Range(0, config.EvalBatches).Select(i => GeneratorEvaluator.ConditionSeed(config.Seed, name, i)).ToArray();
        var rows = seeds.Select(s => data.Conditions.SampleRows(name, config.ConditionPrompts, s)).ToArray();
        using var originalSet = GeneratorEvaluator.Generate(generator, data, config, name);
        var outcomes = new List<TaskOutcome>();
        foreach (var transform in transforms)
        {
            LoraSet? owned = null;
            try
            {
                if (transform != PromptTransform.Original)
                {
                    var texts = rows.SelectMany(r => r.Select(j => SyntheticPromptRewriter.Text(items[j].Prompt, items[j].Answer, transform))).ToList();
                    using var _ = no_grad();
                    using var scope = NewDisposeScope();
                    var encoded = encoding.Encode(texts).to_type(ScalarType.Float32).reshape(rows.Length, config.ConditionPrompts, -1).to(data.Model.Device);
                    owned = generator.Generate(encoded);
                    foreach (var t in owned.Tensors())
                        t.MoveToOuterDisposeScope();
                }
                var set = owned ?? originalSet;
                IReadOnlyList<double> accuracies;
                int n;
                if (owned is null && original is not null && original.Accuracies.Count == rows.Length)
                    (accuracies, n) = (original.Accuracies, original.N);
                else
                {
                    var scored = Enumerable.Range(0, rows.Length).Select(i =>
                    {
                        using var one = BatchedLoraSets.Select(set, i);
                        return GeneratorEvaluator.Accuracy(data, task, one, config.EvalLimit, "generated");
                    }).ToList();
                    (accuracies, n) = ([.. scored.Select(s => s.Accuracy)], scored[0].N);
                }
                outcomes.Add(new TaskOutcome(
                    transform, accuracies, n, GeneratorEvaluator.DeltaCosine(data, set, name), PairedAdapterCosine.Of(originalSet, set).Average()));
            }
            finally
            {
                owned?.Dispose();
            }
        }
        return outcomes;
    }

    /// <summary>The JSON settings of the results file (snake_case, enums as names).</summary>
    public static JsonSerializerOptions JsonOptions => GeneratorConfig.JsonOptions;

    /// <summary>Writes the results of every run as one JSON file <c>{"results": […]}</c> (atomically).</summary>
    public static void Write(string path, IReadOnlyList<RobustnessResult> results)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var text = JsonSerializer.Serialize(new { results }, JsonOptions);
        AtomicFile.WriteText(path, text);
    }
}
