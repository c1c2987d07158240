using LLGBM.Checkpoints;
using LLGBM.Delta;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Tasks.Synthetic;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>Where a generator experiment reads its inputs.</summary>
/// <param name="Base">The base model checkpoint directory.</param>
/// <param name="Tasks">The task suite root (with <c>suite.json</c> for the splits).</param>
/// <param name="Teachers">The teacher pool.</param>
/// <param name="Deltas">The delta cache (filled for the generator's probes when entries are missing).</param>
public sealed record GeneratorInputs(string Base, string Tasks, string Teachers, string Deltas);

/// <summary>
/// Everything a generator experiment holds in memory: the frozen base model and its tokenizer, the split's training
/// and test tasks, the teachers of both with their deltas, the encoded condition pools, and the delta embedder of the
/// generator's probes. Built once and shared by training and evaluation.
/// </summary>
public sealed class GeneratorData : IDisposable
{
    GeneratorData(
        GeneratorInputs inputs, Qwen2ForCausalLM model, ITokenizer tokenizer, IReadOnlyList<TaskData> train, IReadOnlyList<TaskData> test,
        TeacherBank teachers, ConditionBank conditions, IDeltaEmbedder embedder, DeltaMeasure measure, string coordinates, ProbeSet probes, string encoder)
    {
        Inputs = inputs;
        Model = model;
        Tokenizer = tokenizer;
        TrainTasks = train;
        TestTasks = test;
        Teachers = teachers;
        Conditions = conditions;
        Embedder = embedder;
        Measure = measure;
        DeltaCoordinates = coordinates;
        Probes = probes;
        Encoder = encoder;
    }

    /// <summary>The paths read.</summary>
    public GeneratorInputs Inputs { get; }

    /// <summary>The frozen base model (evaluation mode, parameters without gradients).</summary>
    public Qwen2ForCausalLM Model { get; }

    /// <summary>The base model's tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The split's training tasks.</summary>
    public IReadOnlyList<TaskData> TrainTasks { get; }

    /// <summary>The split's test (held-out) tasks.</summary>
    public IReadOnlyList<TaskData> TestTasks { get; }

    /// <summary>The teachers of the training and test tasks with their deltas.</summary>
    public TeacherBank Teachers { get; }

    /// <summary>The encoded condition pools of the training and test tasks.</summary>
    public ConditionBank Conditions { get; }

    /// <summary>The differentiable delta embedder of the config's delta kind and probes.</summary>
    public IDeltaEmbedder Embedder { get; }

    /// <summary>What the deltas measure (<see cref="GeneratorConfig.DeltaKind"/>) and on which probes.</summary>
    public DeltaMeasure Measure { get; }

    /// <summary>
    /// The hash of what the deltas' coordinates mean, apart from any tokenizer (<see cref="CoordinatesOf"/>): two runs
    /// whose deltas share it read and write the same coordinates.
    /// </summary>
    public string DeltaCoordinates { get; }

    /// <summary>The generic probes of the delta activation and of the logit-KL tether.</summary>
    public ProbeSet Probes { get; }

    /// <summary>The condition encoder's identity.</summary>
    public string Encoder { get; }

    /// <summary>
    /// Loads the inputs of <paramref name="config"/>: the split named by <see cref="GeneratorConfig.Split"/>, the
    /// teachers (computing missing deltas), and the condition pools encoded with <paramref name="encode"/>
    /// (texts → [n, D]), whose identity <paramref name="encoder"/> is recorded with the run.
    /// </summary>
    public static GeneratorData Load(
        GeneratorInputs inputs, GeneratorConfig config, Func<IReadOnlyList<string>, Tensor> encode, string encoder,
        Action<string>? log = null, Device? device = null)
    {
        var all = TaskSuite.LoadAll(inputs.Tasks);
        SuiteSplit? split = null;
        if (config.TrainTasks is null || config.TestTasks is null)
        {
            if (!File.Exists(Path.Combine(inputs.Tasks, SyntheticSuiteFiles.ManifestName)))
                throw new LlgbmException(
                    $"{inputs.Tasks}: no {SyntheticSuiteFiles.ManifestName} with splits; name the tasks with train_tasks and test_tasks in the config.");
            split = SyntheticSuiteFiles.ReadSplits(inputs.Tasks).FirstOrDefault(s => s.Name == config.Split)
                ?? throw new LlgbmException($"{inputs.Tasks}: the suite has no split named \"{config.Split}\".");
        }
        IReadOnlyList<TaskData> Pick(IReadOnlyList<string> names) =>
            [.. names.Select(n => all.FirstOrDefault(t => t.Spec.Name == n) ?? throw new LlgbmException($"{inputs.Tasks}: no task directory for {n}."))];
        var train = Pick(config.TrainTasks ?? split!.Train);
        var test = Pick(config.TestTasks ?? split!.Test);
        if (config.TrainFraction < 1)
        {
            var kept = LowDataTasks.Subset(train, config.TrainFraction);
            test = [.. test, .. train.Where(t => !kept.Contains(t))];
            train = kept;
            log?.Invoke(
                $"low-data regime: {train.Count} training tasks kept ({string.Join(", ", train.Select(t => t.Spec.Name))}); " +
                $"the others are evaluated with the held-out tasks");
        }
        var overlap = train.Select(t => t.Spec.Name).Intersect(test.Select(t => t.Spec.Name)).ToList();
        if (overlap.Count > 0)
            throw new LlgbmException($"Generator config: {string.Join(", ", overlap)} would be both a training and a held-out task.");
        log?.Invoke(
            $"{(split is null ? "tasks" : "split " + split.Name)}: {train.Count} training tasks, " +
            $"{test.Count} held-out tasks ({string.Join(", ", test.Select(t => t.Spec.Name))})");
        var model = Qwen2Checkpoint.Load(inputs.Base, device);
        model.eval();
        foreach (var p in model.parameters())
            p.requires_grad = false;
        TeacherBank? teachers = null;
        ConditionBank? conditions = null;
        try
        {
            var tokenizer = Tokenizers.Load(inputs.Base);
            var probes = ProbeSet.Generic(config.Probes);
            var measure = MeasureOf(config, train, probes);
            var coordinates = CoordinatesOf(config, train, probes, model.Config);
            log?.Invoke($"loading teachers and deltas ({measure.Kind.ToString().ToLowerInvariant()}, {measure.ProbeSetName}, {measure.ProbeCount} probes)");
            teachers = TeacherBank.Load(
                inputs.Teachers, inputs.Deltas, inputs.Base, measure,
                [.. train.Concat(test).Select(t => t.Spec.Name)], model.Config, device: device, checkpointsPerTask: config.TeacherCheckpoints);
            if (config.ShuffleDeltas)
            {
                var partner = teachers.ShuffleDeltas([.. train.Select(t => t.Spec.Name)], config.Seed);
                log?.Invoke($"shuffled-delta control: {string.Join(", ", partner.Select(p => $"{p.Key} ← {p.Value}"))}");
            }
            log?.Invoke($"encoding condition pools ({config.ConditionPool} examples per task, {encoder})");
            conditions = new ConditionBank(train.Concat(test), config.ConditionPool, config.ConditionMode, config.Seed, encode);
            var embedder = measure.CreateEmbedder(model, tokenizer);
            return new GeneratorData(inputs, model, tokenizer, train, test, teachers, conditions, embedder, measure, coordinates, probes, encoder);
        }
        catch
        {
            teachers?.Dispose();
            conditions?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>The seed of the draw of the meaning probes (fixed, so that runs of any seed share the coordinates).</summary>
    public const long MeaningProbeSeed = 0x3EA1;

    /// <summary>
    /// The delta measure of <paramref name="config"/>: the delta activation of the generic <paramref name="probes"/>, or
    /// the delta meaning of <see cref="GeneratorConfig.MeaningProbesPerTask"/> (prompt, right answer) pairs of each
    /// training task (in the given order; <see cref="MeaningProbeSeed"/>), per UTF-8 byte.
    /// </summary>
    public static DeltaMeasure MeasureOf(GeneratorConfig config, IReadOnlyList<TaskData> train, ProbeSet probes) =>
        config.DeltaKind switch
        {
            DeltaKind.Activation => DeltaMeasure.Activation(probes, DeltaSpec.Default),
            DeltaKind.Meaning => DeltaMeasure.Meaning(
                MeaningProbeSet.FromTasks(train, config.MeaningProbesPerTask, MeaningProbeSeed), MeaningDeltaSpec.Default),
            var k => throw new LlgbmException($"Generator config: unknown delta_kind {k}."),
        };

    /// <summary>
    /// The hash of the deltas' coordinates of <paramref name="config"/> on a backbone of <paramref name="model"/>'s shape:
    /// for the delta meaning, the (prompt, continuation) texts and the normalisation, the same on every backbone; for the
    /// delta activation, the probe texts, the spec and the backbone's hidden width and depth, since its coordinates are
    /// the backbone's hidden units.
    /// </summary>
    public static string CoordinatesOf(GeneratorConfig config, IReadOnlyList<TaskData> train, ProbeSet probes, Qwen2Config model) =>
        config.DeltaKind == DeltaKind.Meaning
            ? ContentHash.OfText(System.Text.Json.JsonSerializer.Serialize(new
            {
                kind = "meaning",
                spec = MeaningDeltaSpec.Default.Key(),
                pairs = MeaningProbeSet.FromTasks(train, config.MeaningProbesPerTask, MeaningProbeSeed).Probes.Select(p => new[] { p.Prompt, p.Continuation }),
            }))
            : ContentHash.OfText(System.Text.Json.JsonSerializer.Serialize(new
            {
                kind = "activation",
                spec = DeltaSpec.Default.Key(),
                texts = probes.Texts,
                hidden = model.HiddenSize,
                layers = model.NumHiddenLayers,
            }));

    /// <summary>The probes as one right-padded batch: ids and attention mask, [P, T] each (built once).</summary>
    public (Tensor Ids, Tensor Mask) ProbeBatch()
    {
        if (probeBatch is { } cached)
            return cached;
        var tokens = Probes.Tokenize(Tokenizer);
        var length = tokens.Max(t => t.Count);
        var ids = new long[tokens.Count * length];
        var mask = new long[tokens.Count * length];
        for (var r = 0; r < tokens.Count; r++)
            for (var t = 0; t < tokens[r].Count; t++)
            {
                ids[r * length + t] = tokens[r][t];
                mask[r * length + t] = 1;
            }
        probeBatch = (tensor(ids, [tokens.Count, length], device: Model.Device).DetachFromDisposeScope(),
            tensor(mask, [tokens.Count, length], device: Model.Device).DetachFromDisposeScope());
        return probeBatch.Value;
    }

    (Tensor Ids, Tensor Mask)? probeBatch;

    /// <summary>Per-feature mean and standard deviation of the training tasks' pooled encodings, [D] each.</summary>
    public (Tensor Mean, Tensor Std) ConditionStatistics()
    {
        using var scope = NewDisposeScope();
        var rows = cat(TrainTasks.Select(t => Conditions.Pool(t.Spec.Name)).ToArray(), 0);
        return (rows.mean([0]).MoveToOuterDisposeScope(), rows.std([0]).MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        probeBatch?.Ids.Dispose();
        probeBatch?.Mask.Dispose();
        Embedder.Dispose();
        Conditions.Dispose();
        Teachers.Dispose();
        Model.Dispose();
    }
}
