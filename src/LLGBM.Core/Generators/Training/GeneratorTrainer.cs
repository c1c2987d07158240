using System.Diagnostics;
using System.Text.Json;
using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>What one training step logged: every objective term and the figures around them.</summary>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="Values">Named values: <c>loss</c>, <c>weight</c>, <c>delta</c>, <c>kl</c>, <c>norm</c>, their λ, …</param>
public sealed record GeneratorStepLog(int Step, IReadOnlyDictionary<string, double> Values);

/// <summary>
/// Trains a generator: each step draws <see cref="GeneratorConfig.AdaptersPerStep"/> (task, teacher checkpoint,
/// prompt batch) triples from the training tasks — a fresh condition each time — generates their adapters, and
/// minimises L = λ_w·L_weight + λ_δ·L_delta + λ_kl·KL + λ_n·‖ΔŴ‖², the delta term through the differentiable embedder
/// (the base pass cached), in microbatches whose gradients accumulate. AdamW with warm-up and cosine decay, gradient
/// clipping; checkpoints every <see cref="GeneratorConfig.CheckpointEvery"/> steps and resumes from the latest; stops
/// with an error naming the step on a non-finite loss, leaving the last good checkpoint in place.
/// </summary>
public static class GeneratorTrainer
{
    /// <summary>
    /// Trains <paramref name="generator"/> on <paramref name="data"/> in <paramref name="runDir"/>; resumes from the
    /// run's latest checkpoint when there is one. <paramref name="logStep"/> receives the logged steps,
    /// <paramref name="evaluate"/> is called at every evaluation step, and <paramref name="log"/> gets progress lines.
    /// <paramref name="stepSeconds"/> receives each step's wall time (sampling, generation, every term, backward and the
    /// optimiser update; logging and checkpoints excluded). Returns the number of steps run in this call.
    /// </summary>
    public static int Train(
        LoraGenerator generator, GeneratorData data, GeneratorConfig config, string runDir,
        Action<GeneratorStepLog>? logStep = null, Action<int>? evaluate = null, Action<string>? log = null,
        Action<int, double>? stepSeconds = null)
    {
        config.Validate();
        var parameters = generator.named_parameters().Select(p => p.parameter).ToList();
        using var optimizer = new AdamWWithOwnedScalars(parameters, config.LearningRate, weight_decay: config.WeightDecay);
        var schedule = new LearningRateSchedule { Peak = config.LearningRate, WarmupSteps = config.WarmupSteps, TotalSteps = config.Steps };
        var start = GeneratorCheckpoint.LatestStep(runDir) ?? 0;
        if (start > 0)
        {
            GeneratorCheckpoint.Load(runDir, start, generator, optimizer);
            log?.Invoke($"resumed from step {start}");
        }
        if (start >= config.Steps)
            return 0;
        var tasks = data.TrainTasks.Select(t => t.Spec.Name).ToArray();
        var device = data.Model.Device;
        generator.train();
        var clock = Stopwatch.StartNew();
        var sums = new Dictionary<string, double>();
        var count = 0;
        for (var step = start; step < config.Steps; step++)
        {
            var stepStart = clock.Elapsed.TotalSeconds;
            using var scope = NewDisposeScope();
            foreach (var group in optimizer.ParamGroups)
                group.LearningRate = schedule.At(step);
            optimizer.zero_grad();
            var lambdas = new Dictionary<string, double>
            {
                ["weight"] = config.Weight.At(step),
                ["delta"] = config.Delta.At(step),
                ["kl"] = config.Kl.At(step),
                ["norm"] = config.Norm.At(step),
                ["auxiliary"] = config.Auxiliary.At(step),
            };
            var draws = Enumerable.Range(0, config.AdaptersPerStep).Select(i => DrawAt(data, tasks, config.Seed, step, i)).ToList();
            var terms = new Dictionary<string, double>();
            for (var startIndex = 0; startIndex < draws.Count; startIndex += config.Microbatch)
            {
                using var micro = NewDisposeScope();
                var part = draws.Skip(startIndex).Take(config.Microbatch).ToList();
                var fraction = (double)part.Count / draws.Count;
                var conditions = data.Conditions.SampleMany([.. part.Select(d => d.Task)], config.ConditionPrompts, [.. part.Select(d => d.Seed)]).to(device);
                using var teacher = data.Teachers.Stack([.. part.Select(d => d.Teacher)]);
                var teacherIndices = part.Select(d => d.Teacher).ToList();
                var contribution = generator.TrainingStep(
                    new GeneratorStepInput(conditions, teacher, () => data.Teachers.Deltas(teacherIndices).to(device), config));
                using var generated = contribution.Generated;
                var auxiliary = contribution.Auxiliary;
                // The delta term covers the step's first DeltaAdapters adapters (all by default): an unbiased estimate of
                // its mean over the step at a fraction of the cost of running the base model for every adapter.
                var deltaAdapters = config.DeltaAdapters is > 0 and var d && d < draws.Count ? d : draws.Count;
                var deltaRows = Math.Clamp(deltaAdapters - startIndex, 0, part.Count);
                var deltaShare = (double)deltaRows / deltaAdapters;
                var values = Terms(
                    generated, teacher, contribution.TokenLoss, data, config, teacherIndices, lambdas,
                    contribution.DeltaOf ?? data.Embedder.ComputeBatched, deltaRows, deltaShare / fraction);
                if (auxiliary is not null)
                {
                    values["auxiliary"] = auxiliary;
                    using var auxiliaryWeight = lambdas["auxiliary"].ToScalar();
                    values["loss"] = values["loss"].add(auxiliary * auxiliaryWeight, OwnedScalars.One);
                }
                var total = values["loss"];
                var value = total.item<float>();
                if (!float.IsFinite(value))
                {
                    var last = GeneratorCheckpoint.LatestStep(runDir);
                    throw new LlgbmException(
                        $"Generator training ({config.Name}) stopped at step {step + 1}: the loss is {value} " +
                        $"({string.Join(", ", values.Where(p => p.Key != "loss").Select(p => $"{p.Key} {p.Value.item<float>()}"))}). " +
                        (last is { } s
                            ? $"The last good checkpoint is step {s} in {GeneratorCheckpoint.StepDir(runDir, s)}."
                            : "No checkpoint was written yet.") +
                        " Lower the learning rate or the loss weights.");
                }
                using var share = fraction.ToScalar();
                (total * share).backward();
                foreach (var (name, t) in values)
                    terms[name] = terms.GetValueOrDefault(name) + t.item<float>() * (name == "delta" ? deltaShare : fraction);
            }
            var gradNorm = nn.utils.clip_grad_norm_(parameters, config.ClipNorm);
            optimizer.step();
            stepSeconds?.Invoke(step + 1, clock.Elapsed.TotalSeconds - stepStart);
            terms["grad_norm"] = gradNorm;
            terms["lr"] = schedule.At(step);
            foreach (var (name, l) in lambdas)
                terms["lambda_" + name] = l;
            foreach (var (name, v) in terms)
                sums[name] = sums.GetValueOrDefault(name) + v;
            count++;
            var done = step + 1;
            if (done % config.LogEvery == 0 || done == config.Steps)
            {
                var logged = sums.ToDictionary(p => p.Key, p => p.Value / count);
                foreach (var (name, v) in Figures(generator, data, config, draws, device))
                    logged[name] = v;
                logged["seconds"] = clock.Elapsed.TotalSeconds;
                logStep?.Invoke(new GeneratorStepLog(done, logged));
                log?.Invoke(
                    $"step {done}/{config.Steps}  loss {logged["loss"]:F4}  weight {logged.GetValueOrDefault("weight"):F4}  delta " +
                    $"{logged.GetValueOrDefault("delta"):F4}  delta_cos {logged.GetValueOrDefault("delta_cosine"):F3}  ({clock.Elapsed.TotalSeconds:F0} s)");
                sums.Clear();
                count = 0;
            }
            if (done % config.CheckpointEvery == 0 || done == config.Steps)
                GeneratorCheckpoint.Save(runDir, done, generator, optimizer);
            if (evaluate is not null && ((config.EvalEvery > 0 && done % config.EvalEvery == 0) || done == config.Steps))
            {
                generator.eval();
                evaluate(done);
                generator.train();
            }
        }
        generator.eval();
        return config.Steps - start;
    }

    /// <summary>One training draw: a task, one of its teacher checkpoints, and the seed of its prompt batch.</summary>
    public readonly record struct Draw(string Task, int Teacher, long Seed);

    /// <summary>The draw <paramref name="index"/> of step <paramref name="step"/>: a function of the seed alone, so a resumed run draws as an uninterrupted
    /// one.</summary>
    public static Draw DrawAt(GeneratorData data, IReadOnlyList<string> tasks, long seed, int step, int index)
    {
        var mixed = PromptBatchesSeed(seed, step, index);
        var random = new Random(unchecked((int)(mixed ^ (mixed >> 32))));
        var task = tasks[random.Next(tasks.Count)];
        var checkpoints = data.Teachers.ByTask[task];
        return new Draw(task, checkpoints[random.Next(checkpoints.Count)], mixed);
    }

    static long PromptBatchesSeed(long seed, int step, int index) => Tasks.PromptBatches.BatchSeed(seed, step * 4096 + index);

    /// <summary>The objective's terms for one microbatch (<c>loss</c> is their weighted sum; unweighted terms are only computed when their λ is not zero,
    /// except the cheap weight term).</summary>
    static Dictionary<string, Tensor> Terms(
        LoraSet generated, LoraSet teacher, Tensor? tokenLoss, GeneratorData data, GeneratorConfig config, IReadOnlyList<int> teacherIndices,
        IReadOnlyDictionary<string, double> lambdas, Func<LoraSet, Tensor> deltaOf, int deltaRows, double deltaScale)
    {
        var terms = new Dictionary<string, Tensor>();
        var weight = config.WeightLoss switch
        {
            WeightLossKind.DeltaWeight => WeightLosses.RelativeDeltaWeight(generated, teacher),
            WeightLossKind.Factors => WeightLosses.Factors(generated, teacher),
            _ => tokenLoss ?? throw new LlgbmException("Generator training: the token loss needs the generated grid."),
        };
        terms["weight"] = weight;
        using var weightWeight = lambdas["weight"].ToScalar();
        var loss = weight * weightWeight;
        if (lambdas["delta"] > 0 && deltaRows > 0)
        {
            using var subset = deltaRows == generated.Count ? null : BatchedLoraSets.Narrow(generated, 0, deltaRows);
            var predicted = deltaOf(subset ?? generated);
            var target = data.Teachers.Deltas([.. teacherIndices.Take(deltaRows)]).to(predicted.device);
            var delta = DeltaTerm(config.DeltaLoss, predicted, target);
            terms["delta"] = delta;
            using var deltaWeight = (lambdas["delta"] * deltaScale).ToScalar();
            loss = loss.add(delta * deltaWeight, OwnedScalars.One);
        }
        if (lambdas["kl"] > 0)
        {
            var kl = KlTerm(data, generated, teacher);
            terms["kl"] = kl;
            using var klWeight = lambdas["kl"].ToScalar();
            loss = loss.add(kl * klWeight, OwnedScalars.One);
        }
        var norm = AdapterNorm.Penalty(generated);
        terms["norm"] = norm;
        if (lambdas["norm"] > 0)
        {
            using var normWeight = lambdas["norm"].ToScalar();
            loss = loss.add(norm * normWeight, OwnedScalars.One);
        }
        terms["loss"] = loss;
        return terms;
    }

    /// <summary>The delta term between generated [N, D] and teacher [N, D] deltas.</summary>
    public static Tensor DeltaTerm(DeltaLossKind kind, Tensor predicted, Tensor target)
    {
        using var floor = 1e-12.ToScalar();
        return kind switch
        {
            DeltaLossKind.RelativeMse => DeltaLosses.Mse(predicted, target) / target.pow(OwnedScalars.Two).mean().clamp_min(floor),
            DeltaLossKind.NormalizedMse => DeltaLosses.NormalizedMse(predicted, target),
            DeltaLossKind.Cosine => DeltaLosses.CosineDistance(predicted, target),
            _ => throw new LlgbmException($"Unknown delta loss {kind}."),
        };
    }

    /// <summary>The logit-KL tether on the probes: every probe under every generated adapter against the same teacher.</summary>
    static Tensor KlTerm(GeneratorData data, LoraSet generated, LoraSet teacher)
    {
        var (ids, mask) = data.ProbeBatch();
        var rows = ids.shape[0];
        var n = generated.Count;
        using var student = BatchedLoraSets.RepeatEach(generated, rows);
        using var reference = BatchedLoraSets.RepeatEach(teacher, rows);
        return LogitKl.Between(data.Model, ids.repeat(n, 1), mask.repeat(n, 1), student, reference);
    }

    /// <summary>Figures logged with the terms: delta cosine to the teachers and adapter norms of the step's last microbatch.</summary>
    static Dictionary<string, double> Figures(LoraGenerator generator, GeneratorData data, GeneratorConfig config, IReadOnlyList<Draw> draws, Device device)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var part = draws.Take(config.Microbatch).ToList();
        var conditions = data.Conditions.SampleMany([.. part.Select(d => d.Task)], config.ConditionPrompts, [.. part.Select(d => d.Seed)]).to(device);
        using var generated = generator.Generate(conditions);
        using var teacher = data.Teachers.Stack([.. part.Select(d => d.Teacher)]);
        var predicted = data.Embedder.ComputeBatched(generated);
        var target = data.Teachers.Deltas([.. part.Select(d => d.Teacher)]).to(predicted.device);
        return new Dictionary<string, double>
        {
            ["delta_cosine"] = nn.functional.cosine_similarity(predicted, target, 1).mean().item<float>(),
            ["delta_norm"] = predicted.norm(1).mean().item<float>(),
            ["teacher_delta_norm"] = target.norm(1).mean().item<float>(),
            ["adapter_norm"] = Math.Sqrt(AdapterNorm.Penalty(generated).item<float>()),
            ["teacher_adapter_norm"] = Math.Sqrt(AdapterNorm.Penalty(teacher).item<float>()),
            ["weight_error"] = WeightLosses.RelativeDeltaWeight(generated, teacher).item<float>(),
        };
    }

    /// <summary>The JSON line of a logged step (<c>{"step": S, name: value, …}</c>).</summary>
    public static string ToJsonLine(GeneratorStepLog entry)
    {
        var values = new SortedDictionary<string, object>(StringComparer.Ordinal) { ["step"] = entry.Step };
        foreach (var (k, v) in entry.Values)
            values[k] = double.IsFinite(v) ? v : v.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return JsonSerializer.Serialize(values);
    }
}
