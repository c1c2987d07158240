using System.Diagnostics;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Text;
using LLGBM.Training;
using static TorchSharp.torch;

namespace LLGBM.Pretraining;

/// <summary>Progress of <see cref="BasePretrainer.Train"/> after a step.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps planned.</param>
/// <param name="Loss">Completion cross-entropy of the step's batch.</param>
/// <param name="LearningRate">The step's learning rate.</param>
/// <param name="Elapsed">Time since training started.</param>
public sealed record PretrainingProgress(int Step, int TotalSteps, double Loss, double LearningRate, TimeSpan Elapsed);

/// <summary>
/// Pretrains a base model on an instruction-prefixed mixture of tasks: every training example is rendered with
/// <see cref="PromptFormat.WithInstruction"/> and the loss covers only the answer (for multiple choice, the right
/// choice) and the end-of-text token. The model thus learns each task's skill when the instruction names it, and
/// has no way to know the task from a bare prompt. Tasks are drawn in proportion to their recent loss
/// (<see cref="LossWeightedTaskSampler"/>), so that training time goes where the skills are still missing.
/// </summary>
public static class BasePretrainer
{
    /// <summary>
    /// Trains a fresh model of <see cref="BasePretrainingSettings.Config"/> on the training splits of
    /// <paramref name="tasks"/> (tasks without an instruction are skipped). Each example of a step is a task drawn by
    /// the loss-weighted sampler and an example of that task drawn uniformly.
    /// </summary>
    public static Qwen2ForCausalLM Train(
        BasePretrainingSettings settings, ITokenizer tokenizer, IReadOnlyList<TaskData> tasks, Action<PretrainingProgress>? progress = null)
    {
        if (settings.Config.VocabSize < tokenizer.VocabSize)
            throw new LlgbmException(
                $"Base pretraining: the model's vocab_size {settings.Config.VocabSize} is smaller than the tokenizer's {tokenizer.VocabSize} ids; " +
                $"token ids would fall outside the embedding.");
        var pools = tasks
            .Where(t => !string.IsNullOrEmpty(t.Spec.Instruction))
            .Select(t => t.Train.Select(e => CompletionExamples.Encode(tokenizer, t.Spec, e, PromptFormat.WithInstruction)).ToArray())
            .Where(p => p.Length > 0)
            .ToArray();
        if (pools.Length == 0)
            throw new LlgbmException("Base pretraining needs at least one task with an instruction and training examples.");
        var longest = pools.SelectMany(p => p).Max(e => e.Prompt.Count + e.Completion.Count);
        if (longest > settings.Config.MaxPositionEmbeddings)
            throw new LlgbmException(
                $"Base pretraining: an example has {longest} tokens, more than max_position_embeddings {settings.Config.MaxPositionEmbeddings}.");

        var model = new Qwen2ForCausalLM(settings.Config, settings.Device);
        model.InitializeWeights(settings.Seed);
        model.train();
        var schedule = new LearningRateSchedule { Peak = settings.LearningRate, WarmupSteps = settings.WarmupSteps, TotalSteps = settings.Steps };
        using var optimizer = new AdamWWithOwnedScalars(model.parameters(), settings.LearningRate, weight_decay: settings.WeightDecay);
        var random = new Random((int)(settings.Seed & int.MaxValue));
        var sampler = new LossWeightedTaskSampler(pools.Length, settings.SamplingFloor);
        var padId = tokenizer.EndOfTextId;
        var watch = Stopwatch.StartNew();
        for (var step = 0; step < settings.Steps; step++)
        {
            using var scope = NewDisposeScope();
            var examples = new (IReadOnlyList<int>, IReadOnlyList<int>)[settings.BatchSize];
            var taskOf = new int[settings.BatchSize];
            for (var i = 0; i < examples.Length; i++)
            {
                var task = sampler.Next(random);
                var pool = pools[task];
                taskOf[i] = task;
                examples[i] = pool[random.Next(pool.Length)];
            }
            using var batch = CompletionBatch.Create(examples, padId, settings.Device);
            var lr = schedule.At(step);
            foreach (var group in optimizer.ParamGroups)
                group.LearningRate = lr;
            optimizer.zero_grad();
            using var output = model.Forward(batch.Ids, new ForwardOptions { AttentionMask = batch.Mask });
            var exampleLosses = batch.ExampleLosses(output.Logits!);
            var loss = exampleLosses.mean();
            var value = loss.item<float>();
            if (!float.IsFinite(value))
                throw new LlgbmException($"Base pretraining diverged at step {step}: the loss is {value}. Lower the learning rate.");
            loss.backward();
            nn.utils.clip_grad_norm_(model.parameters(), settings.ClipNorm);
            optimizer.step();
            sampler.Observe(taskOf, exampleLosses.detach().cpu().data<float>().ToArray());
            progress?.Invoke(new PretrainingProgress(step + 1, settings.Steps, value, lr, watch.Elapsed));
        }
        model.eval();
        return model;
    }
}
