using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Tasks.Synthetic;
using LLGBM.Text;
using LLGBM.Training;
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
        var examples = task.Train.Select(e => CompletionExamples.Encode(tokenizer, task.Spec, e, PromptFormat.Bare)).ToArray();
        if (examples.Length == 0)
            throw new LlgbmException($"Teacher training: task {task.Spec.Name} has no training examples.");
        var seed = SyntheticSuite.TaskSeed(settings.Seed, task.Spec.Name);
        var random = new Random(seed);
        var keep = settings.CheckpointSteps().ToHashSet();
        var frozen = model.parameters().Select(p => (p, p.requires_grad)).ToList();
        var wasTraining = model.training;
        using var adapter = LoraSet.Initialize(settings.Lora, model.Config, seed, settings.Device, model.Dtype);
        try
        {
            foreach (var (p, _) in frozen)
                p.requires_grad = false;
            model.train();
            var schedule = new LearningRateSchedule { Peak = settings.LearningRate, WarmupSteps = settings.WarmupSteps, TotalSteps = settings.Steps };
            using var optimizer = new AdamWWithOwnedScalars(adapter.Parameters(), settings.LearningRate, weight_decay: settings.WeightDecay);
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
                nn.utils.clip_grad_norm_(adapter.Parameters(), settings.ClipNorm);
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
        finally
        {
            foreach (var (p, requiresGrad) in frozen)
                p.requires_grad = requiresGrad;
            model.train(wasTraining);
        }
    }
}
