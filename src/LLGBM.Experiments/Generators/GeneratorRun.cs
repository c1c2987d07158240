using System.Text.Json;
using System.Text.Json.Nodes;
using LLGBM.Checkpoints;
using LLGBM.Generators;
using LLGBM.Lora;
using LLGBM.Training;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>The evaluation of a generator at one step: every method on every held-out task, and condition sensitivity.</summary>
/// <param name="Step">The training step.</param>
/// <param name="Results">Per method and task.</param>
/// <param name="HeldOutSensitivity">Condition sensitivity over the held-out tasks (null with fewer than two).</param>
/// <param name="TrainSensitivity">Condition sensitivity over the training tasks (null with fewer than two).</param>
public sealed record GeneratorEvaluation(
    int Step, IReadOnlyList<MethodTaskResult> Results, ConditionSensitivity? HeldOutSensitivity, ConditionSensitivity? TrainSensitivity);

/// <summary>
/// A generator run directory: <c>config.json</c> (the <see cref="GeneratorConfig"/>), <c>run.json</c> (inputs, encoder,
/// condition width, LoRA shape), <c>metrics.jsonl</c> and TensorBoard event files under <c>events/</c> (every logged
/// term and figure), <c>checkpoints/</c> and <c>results/</c>
/// (<c>eval-step-NNNNN.json</c>, and <c>heldout.json</c> for the final step with the reference methods: the base
/// model, the oracle teacher of each task and the mean of the training teachers).
/// </summary>
public static class GeneratorRun
{
    /// <summary>The config file of a run.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The run description file.</summary>
    public const string RunFile = "run.json";

    /// <summary>The metrics log.</summary>
    public const string MetricsFile = "metrics.jsonl";

    /// <summary>The TensorBoard event files' folder (<c>tensorboard --logdir RUN/events</c>).</summary>
    public const string EventsFolder = "events";

    /// <summary>The results folder.</summary>
    public const string ResultsFolder = "results";

    /// <summary>The final held-out results file.</summary>
    public const string HeldOutFile = "heldout.json";

    static readonly JsonSerializerOptions Json = GeneratorConfig.JsonOptions;

    // Results may hold undefined figures (a sensitivity ratio with nothing varying): written as "NaN".
    static readonly JsonSerializerOptions ResultsJson = new(GeneratorConfig.JsonOptions)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// Trains (or resumes) the run <paramref name="runDir"/> of <paramref name="config"/> and evaluates it; returns the
    /// final evaluation. A directory holding another config is refused rather than overwritten, unless the run never
    /// reached a checkpoint or an evaluation (a start that failed): then nothing is lost and the run starts afresh. The
    /// directory is created only once the config, the inputs and the generator have been checked. A run resumed from a
    /// checkpoint whose evaluation was interrupted (the process killed while evaluating) evaluates that checkpoint
    /// again before training on, so <c>metrics.jsonl</c> and <c>results/eval-step-NNNNN.json</c> hold every evaluation.
    /// </summary>
    public static GeneratorEvaluation Train(
        GeneratorConfig config, GeneratorInputs inputs, string runDir, ConditionEncoding encoding,
        Action<string>? log = null, Device? device = null)
    {
        config.Validate();
        var configPath = Path.Combine(runDir, ConfigFile);
        var configJson = config.ToJson();
        if (File.Exists(configPath) && HasTrainedState(runDir))
        {
            var existing = GeneratorConfig.Load(configPath);
            if (existing.ToJson() != configJson)
                throw new LlgbmException($"{runDir}: the run holds another configuration ({configPath}); choose a new --out or delete the run.");
        }
        else if (File.Exists(configPath))
            log?.Invoke($"{runDir}: the run never reached a checkpoint; starting it afresh with this configuration");
        using var data = GeneratorData.Load(inputs, config, encoding.Encode, encoding.Identity, log, device);
        using var generator = GeneratorFactory.Create(config, data.Teachers.Lora, data.Model.Config, data.Conditions.Dim, (int)data.Embedder.Dim, device);
        generator.FitStatistics(data);
        Directory.CreateDirectory(runDir);
        AtomicFile.WriteText(configPath, configJson);
        WriteRunFile(runDir, inputs, encoding, data);
        var resumeStep = GeneratorCheckpoint.LatestStep(runDir) ?? 0;
        var metricsPath = Path.Combine(runDir, MetricsFile);
        var redo = resumeStep > 0 && IsEvaluationStep(config, resumeStep) && !Evaluated(runDir, resumeStep);
        GeneratorEvaluation? last = null;
        using (var metrics = resumeStep == 0 || !File.Exists(metricsPath) ? MetricsLog.StartNew(metricsPath)
                   : redo ? ReopenBeforeEvaluation(metricsPath, resumeStep) : MetricsLog.Resume(metricsPath, resumeStep))
        using (var events = new TensorBoardEventWriter(Path.Combine(runDir, EventsFolder), resumeStep > 0 ? resumeStep : null))
        {
            foreach (var warning in metrics.Warnings)
                log?.Invoke(warning);
            void Record(GeneratorEvaluation evaluation)
            {
                var values = MetricValues(evaluation);
                metrics.Append(evaluation.Step, values);
                events.Scalars(values.Where(p => double.IsFinite(p.Value)).ToDictionary(p => p.Key.Replace("eval_", "eval/"), p => p.Value), evaluation.Step);
            }
            if (redo)
            {
                var stepFile = EvaluationFile(runDir, resumeStep);
                log?.Invoke($"the evaluation of step {resumeStep} was interrupted; evaluating the checkpoint again");
                if (File.Exists(stepFile))
                    last = ReadResults(stepFile);
                else
                {
                    GeneratorCheckpoint.Load(runDir, resumeStep, (TorchSharp.torch.nn.Module)generator);
                    generator.eval();
                    last = Evaluate(generator, data, config, resumeStep, withReferences: resumeStep == config.Steps, log, ReferenceCache(runDir));
                    WriteResults(stepFile, last);
                }
                Record(last);
            }
            GeneratorTrainer.Train(generator, data, config, runDir,
                entry =>
                {
                    metrics.Append(entry.Step, entry.Values);
                    events.Scalars(entry.Values.ToDictionary(p => "train/" + p.Key, p => p.Value), entry.Step);
                },
                step =>
                {
                    last = Evaluate(generator, data, config, step, withReferences: step == config.Steps, log, ReferenceCache(runDir));
                    WriteResults(EvaluationFile(runDir, step), last);
                    Record(last);
                },
                log);
        }
        var final = Path.Combine(runDir, ResultsFolder, HeldOutFile);
        if (last is null || last.Step != config.Steps)
        {
            var step = GeneratorCheckpoint.LatestStep(runDir) ?? config.Steps;
            GeneratorCheckpoint.Load(runDir, step, (TorchSharp.torch.nn.Module)generator);
            last = File.Exists(final) ? ReadResults(final) : Evaluate(generator, data, config, step, withReferences: true, log, ReferenceCache(runDir));
        }
        WriteResults(final, last);
        return last;
    }

    /// <summary>The file of the evaluation at <paramref name="step"/>: <c>results/eval-step-NNNNN.json</c>.</summary>
    public static string EvaluationFile(string runDir, int step) => Path.Combine(runDir, ResultsFolder, $"eval-step-{step:D5}.json");

    /// <summary>The key of the held-out accuracy an evaluation logs to <c>metrics.jsonl</c> (it marks an evaluation line).</summary>
    public const string EvaluationMetric = "eval_heldout_accuracy";

    // What an evaluation logs: the generated adapters' held-out accuracy and delta cosine, and condition sensitivity.
    static Dictionary<string, double> MetricValues(GeneratorEvaluation evaluation)
    {
        var generated = evaluation.Results.Where(r => r.Method == "generated" && r.Split == "held-out").ToList();
        return new Dictionary<string, double>
        {
            [EvaluationMetric] = generated.Average(r => r.Mean),
            ["eval_heldout_delta_cosine"] = generated.Average(r => r.DeltaCosine ?? 0),
            ["eval_sensitivity_ratio"] = evaluation.HeldOutSensitivity?.Ratio ?? double.NaN,
            ["eval_sensitivity_spread"] = evaluation.HeldOutSensitivity?.RelativeSpread ?? double.NaN,
            ["eval_train_sensitivity_ratio"] = evaluation.TrainSensitivity?.Ratio ?? double.NaN,
            ["eval_train_sensitivity_spread"] = evaluation.TrainSensitivity?.RelativeSpread ?? double.NaN,
        };
    }

    // The trainer evaluates every eval_every steps and at the last step.
    static bool IsEvaluationStep(GeneratorConfig config, int step) =>
        step == config.Steps || (config.EvalEvery > 0 && step % config.EvalEvery == 0);

    // A checkpoint or an evaluation is what a run must not lose; config.json and run.json alone are a failed start.
    static bool HasTrainedState(string runDir) =>
        GeneratorCheckpoint.LatestStep(runDir) is not null
        || (Directory.Exists(Path.Combine(runDir, ResultsFolder)) && Directory.EnumerateFiles(Path.Combine(runDir, ResultsFolder)).Any());

    // Whether the evaluation of step left both of its records: results/eval-step-N.json and its metrics.jsonl line.
    static bool Evaluated(string runDir, int step)
    {
        var metricsPath = Path.Combine(runDir, MetricsFile);
        return File.Exists(EvaluationFile(runDir, step))
            && File.Exists(metricsPath)
            && MetricsLog.Read(metricsPath).Any(e => (long?)e[MetricsLog.StepKey] == step && e.ContainsKey(EvaluationMetric));
    }

    // The log of a run resumed at step whose evaluation is redone: the lines up to step, less any evaluation line of
    // step itself, reopened so that the evaluation can be appended at step.
    static MetricsLog ReopenBeforeEvaluation(string metricsPath, int step)
    {
        var atStep = MetricsLog.Read(metricsPath).Where(e => (long?)e[MetricsLog.StepKey] == step && !e.ContainsKey(EvaluationMetric)).ToList();
        var metrics = MetricsLog.Resume(metricsPath, step - 1);
        foreach (var entry in atStep)
            metrics.Append((System.Text.Json.Nodes.JsonObject)entry.DeepClone());
        return metrics;
    }

    /// <summary>
    /// Evaluates the generator on the held-out tasks and on <see cref="GeneratorConfig.InDomainTasks"/> training tasks
    /// (with conditions drawn afresh, test examples never trained on), and, with <paramref name="withReferences"/>,
    /// the base model, each task's oracle teacher, the mean training teacher and a random adapter of the training
    /// teachers' norm (cached across runs under
    /// <paramref name="referenceCache"/> when given, since they do not depend on the generator); plus the condition
    /// sensitivity on held-out and training tasks.
    /// </summary>
    public static GeneratorEvaluation Evaluate(
        LoraGenerator generator, GeneratorData data, GeneratorConfig config, int step, bool withReferences,
        Action<string>? log = null, string? referenceCache = null)
    {
        var results = new List<MethodTaskResult>();
        var meanKey = string.Join(",", data.TrainTasks.Select(t => t.Spec.Name));
        var context = withReferences
            ? $"{ContentHash.OfCheckpoint(data.Inputs.Base)}|"
                + $"{ContentHash.OfFile(Path.Combine(data.Inputs.Teachers, Teachers.TeacherPool.ManifestName))}|{config.EvalLimit}"
            : "";
        using var references = new ReferenceAdapters.OfBank(data.Teachers, [.. data.TrainTasks.Select(t => t.Spec.Name)], data.Model.Device);
        MethodTaskResult Reference(Tasks.TaskData task, ReferenceMethod method, string split)
        {
            var name = method.Name();
            var trainingDependent = method is ReferenceMethod.MeanTeacher or ReferenceMethod.Random;
            var key = ContentHash.OfText($"{context}|{task.Spec.Name}|{name}|{(trainingDependent ? meanKey : "")}");
            var path = referenceCache is null ? null : Path.Combine(referenceCache, key + ".json");
            if (path is not null && File.Exists(path))
                return JsonSerializer.Deserialize<MethodTaskResult>(File.ReadAllText(path), ResultsJson)! with { Split = split };
            var result = GeneratorEvaluator.EvaluateFixed(data, config, task, references.For(method, task.Spec.Name), name) with { Split = split };
            if (path is not null)
            {
                Directory.CreateDirectory(referenceCache!);
                AtomicFile.WriteText(path, JsonSerializer.Serialize(result, ResultsJson));
            }
            return result;
        }
        var inDomain = InDomainSample(data.TrainTasks, config.InDomainTasks);
        foreach (var (task, split) in data.TestTasks.Select(t => (t, "held-out")).Concat(inDomain.Select(t => (t, "in-domain"))))
        {
            var generated = GeneratorEvaluator.EvaluateGenerated(generator, data, config, task) with { Split = split };
            results.Add(generated);
            var line = $"  {split,-9} {task.Spec.Name,-14} generated {generated.Mean:P1} ± {generated.Std:P1}  δ-cos {generated.DeltaCosine:F3}";
            if (withReferences)
            {
                var referenceResults = ReferenceAdapters.All.Select(m => Reference(task, m, split)).ToList();
                results.AddRange(referenceResults);
                line += "  " + string.Join("  ", referenceResults.Select(r => $"{r.Method} {r.Mean:P1}"));
            }
            log?.Invoke(line);
        }
        var heldOut = data.TestTasks.Count >= 2 ? GeneratorEvaluator.Sensitivity(generator, data, config, data.TestTasks) : null;
        var train = data.TrainTasks.Count >= 2 ? GeneratorEvaluator.Sensitivity(generator, data, config, data.TrainTasks) : null;
        log?.Invoke(
            $"  condition sensitivity (across / within task): held-out {heldOut?.Ratio:F2}, training {train?.Ratio:F2}; " +
            $"across-task spread / norm: held-out {heldOut?.RelativeSpread:F3}, training {train?.RelativeSpread:F3}");
        return new GeneratorEvaluation(step, results, heldOut, train);
    }

    /// <summary>
    /// Evaluates a run again at its latest checkpoint (for instance after a reference method was added) and rewrites
    /// <c>results/heldout.json</c>; returns the evaluation.
    /// </summary>
    public static GeneratorEvaluation Reevaluate(string runDir, ConditionEncoding encoding, Action<string>? log = null, Device? device = null)
    {
        var config = GeneratorConfig.Load(Path.Combine(runDir, ConfigFile));
        var info = ReadRunFile(runDir);
        if (info.Encoder != encoding.Identity)
            throw new LlgbmException($"{runDir}: the run was trained with encoder {info.Encoder}, not {encoding.Identity}.");
        using var data = GeneratorData.Load(info.Inputs, config, encoding.Encode, encoding.Identity, log, device);
        var step = GeneratorCheckpoint.LatestStep(runDir) ?? throw new LlgbmException($"{runDir}: no checkpoint to evaluate.");
        using var generator = LoadGenerator(runDir, data.Model.Config, step, device);
        var evaluation = Evaluate(generator, data, config, step, withReferences: true, log, ReferenceCache(runDir));
        WriteResults(Path.Combine(runDir, ResultsFolder, HeldOutFile), evaluation);
        return evaluation;
    }

    /// <summary>Where the reference methods' results are kept for the runs beside <paramref name="runDir"/>.</summary>
    public static string ReferenceCache(string runDir) =>
        Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)))!, ".reference-results");

    /// <summary><paramref name="count"/> training tasks spread evenly over their list (all of them when fewer).</summary>
    public static IReadOnlyList<Tasks.TaskData> InDomainSample(IReadOnlyList<Tasks.TaskData> train, int count) =>
        count >= train.Count ? train : [.. Enumerable.Range(0, count).Select(i => train[i * train.Count / count])];

    /// <summary>Writes an evaluation as JSON (atomically).</summary>
    public static void WriteResults(string path, GeneratorEvaluation evaluation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        AtomicFile.WriteText(path, JsonSerializer.Serialize(evaluation, ResultsJson));
    }

    /// <summary>Reads an evaluation written by <see cref="WriteResults"/>.</summary>
    public static GeneratorEvaluation ReadResults(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<GeneratorEvaluation>(File.ReadAllText(path), ResultsJson)
                ?? throw new LlgbmException($"{path}: expected a generator evaluation object.");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not a generator evaluation ({e.Message}).");
        }
    }

    static void WriteRunFile(string runDir, GeneratorInputs inputs, ConditionEncoding encoding, GeneratorData data)
    {
        var run = new JsonObject
        {
            ["inputs"] = JsonSerializer.SerializeToNode(inputs, Json),
            ["base_sha256"] = ContentHash.OfCheckpoint(inputs.Base),
            ["encoder"] = encoding.Identity,
            ["condition_dim"] = data.Conditions.Dim,
            ["delta_dim"] = data.Embedder.Dim,
            ["delta_kind"] = data.Measure.Kind.ToString(),
            ["delta_probes"] = data.Measure.ProbeSetName,
            ["delta_coordinates"] = data.DeltaCoordinates,
            ["hidden_size"] = data.Model.Config.HiddenSize,
            ["layers"] = data.Model.Config.NumHiddenLayers,
            ["lora"] = JsonSerializer.SerializeToNode(data.Teachers.Lora, Json),
            ["train_tasks"] = new JsonArray([.. data.TrainTasks.Select(t => (JsonNode)t.Spec.Name)]),
            ["test_tasks"] = new JsonArray([.. data.TestTasks.Select(t => (JsonNode)t.Spec.Name)]),
        };
        AtomicFile.WriteText(Path.Combine(runDir, RunFile), run.ToJsonString(Json));
    }

    /// <summary>What <c>run.json</c> records.</summary>
    /// <param name="Inputs">The input paths.</param>
    /// <param name="Encoder">The condition encoder's identity.</param>
    /// <param name="ConditionDim">D.</param>
    /// <param name="Lora">The emitted LoRA shape.</param>
    /// <param name="DeltaDim">The width of the deltas (of the probes the run was trained with).</param>
    /// <param name="DeltaKind">The kind of the deltas (<c>Activation</c> for runs written before the field existed).</param>
    /// <param name="DeltaCoordinates">The hash of the deltas' coordinates (<see cref="GeneratorData.CoordinatesOf"/>; null for older runs).</param>
    /// <param name="HiddenSize">The base model's hidden width (null for older runs).</param>
    public sealed record RunInfo(GeneratorInputs Inputs, string Encoder, int ConditionDim, LoraConfig Lora, int DeltaDim,
        Delta.DeltaKind DeltaKind = Delta.DeltaKind.Activation, string? DeltaCoordinates = null, int? HiddenSize = null);

    /// <summary>Reads <c>run.json</c> of a run.</summary>
    public static RunInfo ReadRunFile(string runDir)
    {
        var path = Path.Combine(runDir, RunFile);
        if (!File.Exists(path))
            throw new LlgbmException($"{runDir}: not a generator run (no {RunFile}).");
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new RunInfo(
                node["inputs"].Deserialize<GeneratorInputs>(Json)!,
                (string)node["encoder"]!,
                (int)node["condition_dim"]!,
                node["lora"].Deserialize<LoraConfig>(Json)!,
                (int)node["delta_dim"]!,
                node["delta_kind"] is { } kind ? Enum.Parse<Delta.DeltaKind>((string)kind!) : Delta.DeltaKind.Activation,
                (string?)node["delta_coordinates"],
                (int?)node["hidden_size"] ?? HiddenSizeOf(node["inputs"].Deserialize<GeneratorInputs>(Json)!.Base));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or ArgumentException)
        {
            throw new LlgbmException($"{path}: not a run description ({e.Message}).");
        }
    }

    // The base model's hidden width from its config.json, for runs written before run.json recorded it (null when the
    // base is not where the run found it).
    static int? HiddenSizeOf(string baseDir)
    {
        var path = Path.Combine(baseDir, "config.json");
        return File.Exists(path) ? Model.Qwen2Config.Load(path).HiddenSize : null;
    }

    /// <summary>
    /// The generator of a run at its latest checkpoint (or <paramref name="step"/>), in evaluation mode, for a model of
    /// <paramref name="model"/>'s shape; the caller disposes it.
    /// </summary>
    public static LoraGenerator LoadGenerator(string runDir, Model.Qwen2Config model, int? step = null, Device? device = null)
    {
        var config = GeneratorConfig.Load(Path.Combine(runDir, ConfigFile));
        var info = ReadRunFile(runDir);
        var at = step ?? GeneratorCheckpoint.LatestStep(runDir)
            ?? throw new LlgbmException($"{runDir}: the run has no checkpoint yet; train it with llgbm generator train.");
        var generator = GeneratorFactory.Create(config, info.Lora, model, info.ConditionDim, info.DeltaDim, device);
        try
        {
            GeneratorCheckpoint.Load(runDir, at, (TorchSharp.torch.nn.Module)generator);
        }
        catch
        {
            generator.Dispose();
            throw;
        }
        generator.eval();
        return generator;
    }

    /// <summary>
    /// One adapter from one condition: <paramref name="texts"/> (K prompts, or prompts with answers, as the run was
    /// trained) encoded with <paramref name="encoding"/>, through the generator; an unbatched set that owns its tensors.
    /// </summary>
    public static LoraSet GenerateOne(LoraGenerator generator, ConditionEncoding encoding, IReadOnlyList<string> texts, Device? device = null)
    {
        if (texts.Count == 0)
            throw new LlgbmException("Generate: the condition has no prompts.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var encoded = encoding.Encode(texts).to_type(ScalarType.Float32).to(device ?? CPU).unsqueeze(0);
        using var batched = generator.Generate(encoded);
        var modules = new Dictionary<string, LoraModule>();
        foreach (var (path, m) in batched.Modules)
            modules[path] = m with { A = m.A![0].clone().MoveToOuterDisposeScope(), B = m.B![0].clone().MoveToOuterDisposeScope() };
        return new LoraSet(modules, ownsTensors: true);
    }
}
