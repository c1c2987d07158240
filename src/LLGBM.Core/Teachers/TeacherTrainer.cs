using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Tasks.Synthetic;
using LLGBM.Text;
using LLGBM.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Teachers;

/// <summary>Progress of <see cref="TeacherTrainer.Train"/> after a step.</summary>
/// <param name="Task">The task trained.</param>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps planned.</param>
/// <param name="Loss">The step's completion loss.</param>
public sealed record TeacherProgress(string Task, int Step, int TotalSteps, double Loss);

/// <summary>
/// Trains one teacher LoRA on one task: the base model is frozen, the adapter (PEFT-initialised, so it starts as a
/// no-op) learns to answer the task's bare prompts, with the loss on the answer (or right choice) and end-of-text only.
/// </summary>
public static class TeacherTrainer
{
    /// <summary>
    /// Trains on <paramref name="task"/>'s training split and calls <paramref name="checkpoint"/> at each of
    /// <see cref="TeacherTrainingSettings.CheckpointSteps"/> with the step, the adapter as it is then, and the mean
    /// training loss of the steps since the previous checkpoint. The adapter passed is only valid during the call.
    /// </summary>
    public static void Train(
        Qwen2ForCausalLM model, ITokenizer tokenizer, TaskData task, TeacherTrainingSettings settings,
        Action<int, LoraSet, double> checkpoint, Action<TeacherProgress>? progress = null)
    {
        settings.Validate();
        var examples = Encoded(tokenizer, task);
        var random = new Random(SyntheticSuite.TaskSeed(settings.Seed, task.Spec.Name));
        var keep = settings.CheckpointSteps().ToHashSet();
        using var adapter = LoraSet.Initialize(settings.Lora, model.Config, settings.InitialisationSeed(task.Spec.Name), settings.Device, model.Dtype);
        var trained = Trainable(adapter, settings);
        using (new FrozenBase(model))
        {
            var schedule = new LearningRateSchedule { Peak = settings.LearningRate, WarmupSteps = settings.WarmupSteps, TotalSteps = settings.Steps };
            using var optimizer = new AdamWWithOwnedScalars(trained, settings.LearningRate, weight_decay: settings.WeightDecay);
            var lossSum = 0.0;
            var lossCount = 0;
            for (var step = 0; step < settings.Steps; step++)
            {
                using var scope = NewDisposeScope();
                var batchExamples = new (IReadOnlyList<int>, IReadOnlyList<int>)[settings.BatchSize];
                for (var i = 0; i < batchExamples.Length; i++)
                    batchExamples[i] = examples[random.Next(examples.Length)];
                using var batch = CompletionBatch.Create(batchExamples, tokenizer.EndOfTextId, settings.Device);
                foreach (var group in optimizer.ParamGroups)
                    group.LearningRate = schedule.At(step);
                optimizer.zero_grad();
                using var output = model.Forward(batch.Ids, new ForwardOptions { AttentionMask = batch.Mask, Lora = adapter });
                var loss = batch.Loss(output.Logits!);
                var value = loss.item<float>();
                if (!float.IsFinite(value))
                    throw new LlgbmException($"Teacher training on {task.Spec.Name} diverged at step {step}: the loss is {value}. Lower the learning rate.");
                loss.backward();
                nn.utils.clip_grad_norm_(trained, settings.ClipNorm);
                optimizer.step();
                lossSum += value;
                lossCount++;
                progress?.Invoke(new TeacherProgress(task.Spec.Name, step + 1, settings.Steps, value));
                if (keep.Contains(step + 1))
                {
                    using var noGrad = no_grad();
                    checkpoint(step + 1, adapter, lossSum / lossCount);
                    lossSum = 0;
                    lossCount = 0;
                }
            }
        }
    }

    /// <summary>
    /// Trains one teacher for each of <paramref name="tasks"/> at once: every step runs the N teachers' batches as one
    /// forward/backward pass of N × batch-size rows, rows of teacher t under adapter t (the per-example LoRA path), with
    /// each teacher's own examples (drawn as <see cref="Train"/> draws them), loss (the mean over its own completion
    /// tokens), gradient-norm clipping and AdamW state (the factors are stacked [N, …] and AdamW is element-wise), so each
    /// teacher follows its one-at-a-time run up to floating-point rounding. <paramref name="checkpoint"/> receives the
    /// teacher's index, the step, its adapter (valid only during the call) and its mean loss since its previous
    /// checkpoint. With LoRA dropout the teachers draw their dropout masks from one stream, unlike separate runs.
    /// </summary>
    public static void TrainBatched(
        Qwen2ForCausalLM model, ITokenizer tokenizer, IReadOnlyList<TaskData> tasks, TeacherTrainingSettings settings,
        Action<int, int, LoraSet, double> checkpoint, Action<TeacherProgress>? progress = null)
    {
        settings.Validate();
        if (tasks.Count == 0)
            throw new LlgbmException("Teacher training: no tasks to train.");
        var n = tasks.Count;
        var examples = tasks.Select(task => Encoded(tokenizer, task)).ToArray();
        var randoms = tasks.Select(t => new Random(SyntheticSuite.TaskSeed(settings.Seed, t.Spec.Name))).ToArray();
        var keep = settings.CheckpointSteps().ToHashSet();
        using var adapters = Stacked(settings, model, tasks);
        var parameters = Trainable(adapters, settings);
        using (new FrozenBase(model))
        {
            var schedule = new LearningRateSchedule { Peak = settings.LearningRate, WarmupSteps = settings.WarmupSteps, TotalSteps = settings.Steps };
            using var optimizer = new AdamWWithOwnedScalars(parameters, settings.LearningRate, weight_decay: settings.WeightDecay);
            var lossSums = new double[n];
            var lossCounts = new int[n];
            for (var step = 0; step < settings.Steps; step++)
            {
                using var scope = NewDisposeScope();
                var batchExamples = new (IReadOnlyList<int>, IReadOnlyList<int>)[n * settings.BatchSize];
                for (var t = 0; t < n; t++)
                    for (var i = 0; i < settings.BatchSize; i++)
                        batchExamples[t * settings.BatchSize + i] = examples[t][randoms[t].Next(examples[t].Length)];
                using var batch = CompletionBatch.Create(batchExamples, tokenizer.EndOfTextId, settings.Device);
                foreach (var group in optimizer.ParamGroups)
                    group.LearningRate = schedule.At(step);
                optimizer.zero_grad();
                using var output = model.Forward(batch.Ids, new ForwardOptions { AttentionMask = batch.Mask, Lora = adapters });
                var losses = batch.GroupLosses(output.Logits!, n);
                var values = losses.detach().cpu().data<float>().ToArray();
                for (var t = 0; t < n; t++)
                    if (!float.IsFinite(values[t]))
                        throw new LlgbmException(
                            $"Teacher training on {tasks[t].Spec.Name} diverged at step {step}: the loss is {values[t]}. Lower the learning rate.");
                losses.sum().backward();
                ClipEach(parameters, n, settings.ClipNorm);
                optimizer.step();
                for (var t = 0; t < n; t++)
                {
                    lossSums[t] += values[t];
                    lossCounts[t]++;
                    progress?.Invoke(new TeacherProgress(tasks[t].Spec.Name, step + 1, settings.Steps, values[t]));
                }
                if (keep.Contains(step + 1))
                {
                    using var noGrad = no_grad();
                    for (var t = 0; t < n; t++)
                    {
                        using var adapter = BatchedLoraSets.Select(adapters, t);
                        checkpoint(t, step + 1, adapter, lossSums[t] / lossCounts[t]);
                        lossSums[t] = 0;
                        lossCounts[t] = 0;
                    }
                }
            }
        }
    }

    // A task's training examples encoded as (prompt, completion) ids, bare prompts.
    static (IReadOnlyList<int>, IReadOnlyList<int>)[] Encoded(ITokenizer tokenizer, TaskData task)
    {
        var examples = task.Train.Select(e => CompletionExamples.Encode(tokenizer, task.Spec, e, PromptFormat.Bare)).ToArray();
        return examples.Length > 0
            ? examples
            : throw new LlgbmException($"Teacher training: task {task.Spec.Name} has no training examples.");
    }

    // The base model frozen and in training mode while a teacher trains; disposing restores both as they were.
    sealed class FrozenBase : IDisposable
    {
        readonly Qwen2ForCausalLM model;
        readonly List<(Parameter Parameter, bool RequiresGrad)> parameters;
        readonly bool wasTraining;

        public FrozenBase(Qwen2ForCausalLM model)
        {
            this.model = model;
            parameters = [.. model.parameters().Select(p => (p, p.requires_grad))];
            wasTraining = model.training;
            foreach (var (p, _) in parameters)
                p.requires_grad = false;
            model.train();
        }

        public void Dispose()
        {
            foreach (var (p, requiresGrad) in parameters)
                p.requires_grad = requiresGrad;
            model.train(wasTraining);
        }
    }

    // The factors the optimiser trains: A and B, or B alone under LoRA-FA (A then keeps its initial value and no gradient).
    static List<Parameter> Trainable(LoraSet adapter, TeacherTrainingSettings settings)
    {
        if (settings.TrainsA)
            return [.. adapter.Parameters()];
        foreach (var m in adapter.Modules.Values)
            m.A!.requires_grad = false;
        return [.. adapter.Modules.Values.Select(m => (Parameter)m.B!)];
    }

    // The teachers' initial adapters (each as Train initialises it, from its task's seed) stacked into one set of
    // trainable factors A [N, r, in], B [N, out, r].
    static LoraSet Stacked(TeacherTrainingSettings settings, Qwen2ForCausalLM model, IReadOnlyList<TaskData> tasks)
    {
        var initial = tasks
            .Select(t => LoraSet.Initialize(settings.Lora, model.Config, settings.InitialisationSeed(t.Spec.Name), settings.Device, model.Dtype))
            .ToList();
        try
        {
            // Parameter's constructor takes each stacked tensor's handle over, so the stacked set is not disposed.
            var stacked = BatchedLoraSets.Stack(initial);
            var modules = stacked.Modules.ToDictionary(
                kv => kv.Key, kv => kv.Value with { A = new Parameter(kv.Value.A!), B = new Parameter(kv.Value.B!) });
            return new LoraSet(modules, ownsTensors: true, settings.Lora.Dropout) { RowsPerAdapter = settings.BatchSize };
        }
        finally
        {
            foreach (var s in initial)
                s.Dispose();
        }
    }

    // Gradient-norm clipping of each teacher's slice [t] of the stacked factors on its own, as clip_grad_norm_ clips
    // one teacher's factors: coefficient min(1, max / (‖g_t‖ + 1e-6)).
    static void ClipEach(IReadOnlyList<Parameter> parameters, int n, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var squares = parameters.Select(p => p.grad!.reshape(n, -1).pow(OwnedScalars.Two).sum(1)).ToArray();
        var norms = stack(squares).sum(dim: 0).sqrt();
        using var epsilon = 1e-6.ToScalar();
        using var max = maxNorm.ToScalar();
        using var one = 1.ToScalar();
        var coefficients = norms.add(epsilon, OwnedScalars.One).reciprocal().mul(max).clamp_max(one);
        foreach (var p in parameters)
        {
            var shape = new long[p.dim()];
            Array.Fill(shape, 1L);
            shape[0] = n;
            p.grad!.mul_(coefficients.view(shape));
        }
    }
}
