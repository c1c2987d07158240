using System.Diagnostics;
using System.Text.Json;
using LLGBM.Algebra;
using LLGBM.Checkpoints;
using LLGBM.Conditioning;
using LLGBM.Delta;
using LLGBM.Evaluation;
using LLGBM.Generators;
using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Teachers;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>Where the inputs of a mixture experiment live, and its choices.</summary>
public sealed record MixtureExperimentSettings
{
    /// <summary>The base checkpoint (with its tokenizer).</summary>
    public required string Base { get; init; }

    /// <summary>The suite root holding the component tasks.</summary>
    public required string Tasks { get; init; }

    /// <summary>The main teacher pool (the component teachers).</summary>
    public required string Teachers { get; init; }

    /// <summary>The delta cache of the main pool (generic probes, default spec).</summary>
    public required string Deltas { get; init; }

    /// <summary>The root holding the mixture's task directory (<c>llgbm tasks mix</c>).</summary>
    public required string MixtureTasks { get; init; }

    /// <summary>The teacher pool holding the mixture's teacher (<c>llgbm teachers train --task MIX</c>).</summary>
    public required string MixtureTeachers { get; init; }

    /// <summary>The mixture task's name.</summary>
    public required string Mixture { get; init; }

    /// <summary>Generator runs that generate an adapter from a condition drawn from both components.</summary>
    public IReadOnlyList<string> Generators { get; init; } = [];

    /// <summary>A two-stage generator run whose decoder turns δ_A + δ_B into an adapter (none: skipped).</summary>
    public string? TwoStage { get; init; }

    /// <summary>The encoding cache directory.</summary>
    public required string Encodings { get; init; }

    /// <summary>Test examples scored per component (the mixture's score pools both).</summary>
    public int Limit { get; init; } = 100;

    /// <summary>Conditions (prompt batches) per generated method.</summary>
    public int Conditions { get; init; } = 2;

    /// <summary>Seed of the conditions.</summary>
    public long Seed { get; init; }

    /// <summary>TIES's trim density.</summary>
    public double Density { get; init; } = Merge.DefaultDensity;

    /// <summary>Where the model runs.</summary>
    public Device Device { get; init; } = CPU;
}

/// <summary>One method of the mixture experiment: its accuracy (per condition) and its delta's scores.</summary>
/// <param name="Method">A stable key, e.g. <c>merge:ties</c> or <c>generated:multitask-seed0</c>.</param>
/// <param name="Group">reference, teacher, generated, two-stage or merge.</param>
/// <param name="Description">What the adapter is, in words.</param>
/// <param name="Scores">The accuracy of each adapter evaluated (one, or one per condition).</param>
/// <param name="Deltas">Each adapter's delta scores (null for the base model).</param>
public sealed record MixtureMethodResult(
    string Method, string Group, string Description, IReadOnlyList<MixtureScores> Scores, IReadOnlyList<DeltaScores?> Deltas);

/// <summary>A teacher adapter used by the experiment.</summary>
/// <param name="Task">Its task.</param>
/// <param name="Step">The kept step (the last).</param>
/// <param name="Adapter">Its PEFT directory.</param>
public sealed record MixtureTeacher(string Task, int Step, string Adapter);

/// <summary>What <see cref="MixtureExperiment.Run"/> found.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="First">The first component task.</param>
/// <param name="Second">The second component task.</param>
/// <param name="Teachers">The first component's, the second's and the mixture's teacher.</param>
/// <param name="Methods">Every method, in order.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record MixtureExperimentResult(
    MixtureExperimentSettings Settings, string First, string Second, IReadOnlyList<MixtureTeacher> Teachers,
    IReadOnlyList<MixtureMethodResult> Methods, double Seconds);

/// <summary>
/// Compositionality on a two-task mixture (A + B, <see cref="TaskMixture"/>): every adapter is scored on both
/// components' test examples (pooled: the mixture's) and its delta activation compared with δ_A + δ_B. The adapters:
/// the base model, each component's teacher, the teacher trained on the mixture, adapters generated from conditions
/// drawn from both components, the two-stage decoder applied to δ̂_A + δ̂_B (predicted from each component's prompts)
/// and to the teachers' δ_A + δ_B, and the sum, average and TIES merge of the component teachers' task vectors.
/// </summary>
public static class MixtureExperiment
{
    /// <summary>Runs the experiment; <paramref name="log"/> receives a line per step.</summary>
    public static MixtureExperimentResult Run(MixtureExperimentSettings s, Action<string> log)
    {
        var clock = Stopwatch.StartNew();
        if (s.Limit < 1)
            throw new LlgbmException($"--limit {s.Limit}: score at least one test example per component.");
        if (s.Conditions < 1)
            throw new LlgbmException($"--conditions {s.Conditions}: at least one condition.");
        var mixtureDir = Path.Combine(s.MixtureTasks, PathNames.Validate(s.Mixture, "mixture", "--mixture"));
        if (!TaskDirectory.IsTaskDirectory(mixtureDir))
            throw new LlgbmException($"--mixture-tasks {s.MixtureTasks}: no mixture task {s.Mixture} (write it with llgbm tasks mix).");
        var mixture = TaskDirectory.Load(mixtureDir);
        if (mixture.Spec.Components.Count != 2)
            throw new LlgbmException($"{mixtureDir}: task.json names {mixture.Spec.Components.Count} components; a mixture of two tasks is expected.");
        TaskData Component(string name)
        {
            var dir = Path.Combine(s.Tasks, name);
            if (!TaskDirectory.IsTaskDirectory(dir))
                throw new LlgbmException($"--tasks {s.Tasks}: no task directory {name}, a component of {s.Mixture}.");
            return TaskDirectory.Load(dir);
        }
        var first = Component(mixture.Spec.Components[0]);
        var second = Component(mixture.Spec.Components[1]);
        var a = first.Spec.Name;
        var b = second.Spec.Name;

        using var model = Qwen2Checkpoint.Load(s.Base, s.Device, ScalarType.Float32);
        model.eval();
        var tokenizer = Tokenizers.Load(s.Base);
        var probes = ProbeSet.Generic();
        var embedder = new DeltaEmbedder(model, probes.Tokenize(tokenizer), DeltaSpec.Default);

        log($"{s.Mixture}: loading the component teachers' deltas from {s.Deltas}");
        var (teacherA, deltaA) = CachedTeacher(s, a);
        var (teacherB, deltaB) = CachedTeacher(s, b);
        var teacherMix = MixtureTeacherOf(s);
        var options = new EvaluationOptions { Format = PromptFormat.Bare, Limit = s.Limit };
        var methods = new List<MixtureMethodResult>();

        (MixtureScores Scores, float[]? Delta) Measure(string label, LoraSet? lora)
        {
            var evaluated = new Qwen2EvaluatedModel(model, "base", lora, label);
            var scores = MixtureScores.Of(
                TaskEvaluator.Evaluate(evaluated, tokenizer, first, options), TaskEvaluator.Evaluate(evaluated, tokenizer, second, options));
            float[]? delta = null;
            if (lora is not null)
            {
                using var d = embedder.ComputeNoGrad(lora);
                delta = ToArray(d);
            }
            log(FormattableString.Invariant($"{s.Mixture}: {label}: mixture {scores.Mixture:F3} ({a} {scores.First:F3}, {b} {scores.Second:F3})"));
            return (scores, delta);
        }

        using var tauA = TaskVectorModule.Load(model.Config, teacherA.Adapter);
        using var tauB = TaskVectorModule.Load(model.Config, teacherB.Adapter);
        using var tauMix = TaskVectorModule.Load(model.Config, teacherMix.Adapter);
        (MixtureScores, float[]?) MeasureVector(string label, TaskVector tau)
        {
            using var lora = TaskVectorModule.ToDenseLoraOn(s.Device, ScalarType.Float32, tau);
            return Measure(label, lora);
        }

        var mixTeacher = MeasureVector("mixture teacher", tauMix);
        var deltaMix = mixTeacher.Item2!;
        DeltaScores? Scores(float[]? delta) => delta is null ? null : DeltaScores.Of(delta, deltaA, deltaB, deltaMix);
        void Add(string method, string group, string description, IReadOnlyList<(MixtureScores Scores, float[]? Delta)> runs) =>
            methods.Add(new(method, group, description, [.. runs.Select(r => r.Scores)], [.. runs.Select(r => Scores(r.Delta))]));

        Add("base", "reference", "the base model, no adapter", [Measure("base model", null)]);
        Add("teacher-first", "reference", $"{a}'s teacher alone", [MeasureVector($"{a}'s teacher", tauA)]);
        Add("teacher-second", "reference", $"{b}'s teacher alone", [MeasureVector($"{b}'s teacher", tauB)]);
        Add("mixture-teacher", "teacher", "the teacher trained on the mixture", [mixTeacher]);

        foreach (var runDir in s.Generators)
        {
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(runDir));
            var (config, encoding, generator, encoder) = OpenRun(s, runDir, model.Config);
            using (encoder)
            using (generator)
            {
                var runs = new List<(MixtureScores, float[]?)>();
                for (var c = 0; c < s.Conditions; c++)
                {
                    var texts = MixtureCondition.Texts(first, second, config.ConditionPrompts, PromptBatches.BatchSeed(s.Seed, c), config.ConditionMode);
                    using var adapter = GeneratorRun.GenerateOne(generator, encoding, texts, s.Device);
                    runs.Add(Measure($"{name}, condition {c + 1}", adapter));
                }
                Add($"generated:{name}", "generated", $"{name} from {config.ConditionPrompts} prompts drawn from both tasks", runs);
            }
        }

        if (s.TwoStage is { } twoStageDir)
        {
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(twoStageDir));
            var (config, encoding, generator, encoder) = OpenRun(s, twoStageDir, model.Config);
            using (encoder)
            using (generator)
            {
                var twoStage = generator.DeltaStages
                    ?? throw new LlgbmException($"--two-stage {twoStageDir}: the run's generator is not a two-stage generator (variant TwoStage).");
                if (twoStage.DeltaDim != deltaA.Length)
                    throw new LlgbmException(
                        $"--two-stage {twoStageDir}: its decoder reads deltas of width {twoStage.DeltaDim}, the cached deltas have width {deltaA.Length}.");
                var runs = new List<(MixtureScores, float[]?)>();
                for (var c = 0; c < s.Conditions; c++)
                {
                    var seed = PromptBatches.BatchSeed(s.Seed, c);
                    using var scope = NewDisposeScope();
                    using var _ = no_grad();
                    var predicted = Predict(twoStage, encoding, MixtureCondition.Texts(first, config.ConditionPrompts, seed, config.ConditionMode), s.Device)
                        .add(
                            Predict(twoStage, encoding, MixtureCondition.Texts(second, config.ConditionPrompts, seed, config.ConditionMode), s.Device),
                            OwnedScalars.One);
                    using var adapter = Unbatch(twoStage.Decode(predicted));
                    runs.Add(Measure($"{name}: decode(δ̂_A + δ̂_B), condition {c + 1}", adapter));
                }
                Add(
                    "two-stage:predicted-sum",
                    "two-stage",
                    $"{name}'s decoder on δ̂_A + δ̂_B, each predicted from {config.ConditionPrompts} prompts of one task",
                    runs);
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    var sum = tensor(Compose.Add(deltaA, deltaB)).to(s.Device).unsqueeze(0);
                    using var adapter = Unbatch(twoStage.Decode(sum));
                    Add(
                        "two-stage:teacher-sum",
                        "two-stage",
                        $"{name}'s decoder on the teachers' δ_A + δ_B",
                        [Measure($"{name}: decode(δ_A + δ_B)", adapter)]);
                }
            }
        }

        using (var sum = tauA + tauB)
            Add("merge:sum", "merge", "task arithmetic: τ_A + τ_B", [MeasureVector("τ_A + τ_B", sum)]);
        foreach (var method in new[] { Merge.Method.Linear, Merge.Method.Ties })
        {
            var merge = new Merge.Settings(method, s.Density, [], s.Seed, 1.0);
            using var merged = Merge.Run(merge, [tauA, tauB]);
            Add($"merge:{method.Name}", "merge", merge.Describe() + " of the two teachers", [MeasureVector(merge.Describe(), merged)]);
        }

        return new MixtureExperimentResult(s, a, b, [teacherA, teacherB, teacherMix], methods, clock.Elapsed.TotalSeconds);
    }

    static float[] ToArray(Tensor t) => t.to_type(ScalarType.Float32).cpu().data<float>().ToArray();

    // The last kept adapter of a component's teacher and its cached delta.
    static (MixtureTeacher Teacher, float[] Delta) CachedTeacher(MixtureExperimentSettings s, string task)
    {
        var loaded = DeltaCache.Load(s.Deltas, s.Base, ProbeSet.Generic(), DeltaSpec.Default);
        try
        {
            var last = loaded.Where(d => d.Task == task).MaxBy(d => d.Step)
                ?? throw new LlgbmException(
                    $"--deltas {s.Deltas}: no cached delta of a {task} teacher (compute them with llgbm deltas compute over {s.Teachers}).");
            return (new MixtureTeacher(task, last.Step, Path.Combine(s.Teachers, last.Adapter)), ToArray(last.Delta));
        }
        finally
        {
            foreach (var d in loaded)
                d.Dispose();
        }
    }

    // The last kept adapter of the mixture's teacher.
    static MixtureTeacher MixtureTeacherOf(MixtureExperimentSettings s)
    {
        var path = Path.Combine(s.MixtureTeachers, s.Mixture, TeacherPool.TaskManifestName);
        if (!File.Exists(path))
            throw new LlgbmException(
                $"--mixture-teachers {s.MixtureTeachers}: no {s.Mixture}/{TeacherPool.TaskManifestName}; " +
                $"train it with llgbm teachers train --tasks {s.MixtureTasks} --task {s.Mixture}.");
        TeacherTaskManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<TeacherTaskManifest>(File.ReadAllText(path), TeacherTaskManifest.JsonOptions)
                ?? throw new LlgbmException($"{path}: empty.");
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not a teacher record ({e.Message}).");
        }
        var last = manifest.Checkpoints.MaxBy(c => c.Step) ?? throw new LlgbmException($"{path}: no kept adapters.");
        PathNames.ValidateRelative(last.Adapter, $"the adapter of step {last.Step}", path);
        return new MixtureTeacher(s.Mixture, last.Step, Path.Combine(s.MixtureTeachers, last.Adapter));
    }

    static (GeneratorConfig Config, ConditionEncoding Encoding, LoraGenerator Generator, Conditioning.ISentenceEncoder Encoder) OpenRun(
        MixtureExperimentSettings s, string runDir, Qwen2Config model)
    {
        var configPath = Path.Combine(runDir, GeneratorRun.ConfigFile);
        if (!File.Exists(configPath))
            throw new LlgbmException($"{runDir}: not a generator run (no {GeneratorRun.ConfigFile}).");
        var config = GeneratorConfig.Load(configPath);
        var info = GeneratorRun.ReadRunFile(runDir);
        var encoder = SentenceEncoders.OpenCached(config.Encoder, s.Base, config.Seed, s.Encodings, s.Device);
        try
        {
            if (encoder.Identity != info.Encoder)
                throw new LlgbmException($"{runDir}: the run was trained with encoder {info.Encoder}, but {encoder.Identity} is what is available here.");
            return (config, ConditionEncoding.From(encoder), GeneratorRun.LoadGenerator(runDir, model, null, s.Device), encoder);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    // δ̂ of one condition, [1, delta width].
    static Tensor Predict(IDeltaStages generator, ConditionEncoding encoding, IReadOnlyList<string> texts, Device device) =>
        generator.PredictDelta(encoding.Encode(texts).to_type(ScalarType.Float32).to(device).unsqueeze(0));

    // The one adapter of a batched set of one, as an unbatched set owning its tensors (the batched set is disposed).
    static LoraSet Unbatch(LoraSet batched)
    {
        using (batched)
        {
            var modules = new Dictionary<string, LoraModule>();
            foreach (var (path, m) in batched.Modules)
                modules[path] = m with { A = m.A![0].clone().DetachFromDisposeScope(), B = m.B![0].clone().DetachFromDisposeScope() };
            return new LoraSet(modules, ownsTensors: true);
        }
    }
}
