using LLGBM.Evaluation;
using LLGBM.Generators;
using LLGBM.Lora;
using LLGBM.Tasks;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>The result of one method on one task: accuracy over several conditions (or one adapter).</summary>
/// <param name="Method">The method (<c>generated</c>, <c>base</c>, <c>oracle</c>, <c>mean-teacher</c>, …).</param>
/// <param name="Task">The task.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Accuracies">Accuracy per condition (one entry for methods that ignore the condition).</param>
/// <param name="Mean">Mean accuracy.</param>
/// <param name="Std">Sample standard deviation over conditions (0 for one entry).</param>
/// <param name="N">Test examples per evaluation.</param>
/// <param name="DeltaCosine">Mean cosine between the adapters' deltas and the oracle teacher's (null for the base).</param>
/// <param name="Split"><c>held-out</c> (a task the generator never trained on) or <c>in-domain</c> (a training task, fresh conditions, test examples).</param>
public sealed record MethodTaskResult(
    string Method, string Task, string Domain, IReadOnlyList<double> Accuracies, double Mean, double Std, int N, double? DeltaCosine,
    string Split = "held-out");

/// <summary>
/// Evaluates generated adapters and the reference methods on tasks: each task's test examples (bare prompts, the
/// first <see cref="GeneratorConfig.EvalLimit"/>), under adapters generated from <see cref="GeneratorConfig.EvalBatches"/>
/// different conditions (prompt batches of the task's training split), so that no task is judged on one fixed
/// condition.
/// </summary>
public static class GeneratorEvaluator
{
    /// <summary>The seed of evaluation condition <paramref name="index"/> of a task (fixed across runs of one seed).</summary>
    public static long ConditionSeed(long seed, string task, int index) =>
        PromptBatches.BatchSeed(seed ^ 0x5EED_E7A1L ^ Stable(task), index);

    /// <summary>A stable 64-bit FNV-1a hash of a name (the same on every machine and run).</summary>
    public static long Stable(string text)
    {
        var h = 1469598103934665603UL;
        foreach (var c in text)
            h = unchecked((h ^ c) * 1099511628211UL);
        return unchecked((long)h);
    }

    /// <summary>The adapters the generator emits for <paramref name="task"/>'s evaluation conditions (batched, no gradients).</summary>
    public static LoraSet Generate(LoraGenerator generator, GeneratorData data, GeneratorConfig config, string task)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var seeds = Enumerable.Range(0, config.EvalBatches).Select(i => ConditionSeed(config.Seed, task, i)).ToArray();
        var conditions = data.Conditions.SampleMany([.. seeds.Select(_ => task)], config.ConditionPrompts, seeds).to(data.Model.Device);
        var set = generator.Generate(conditions);
        foreach (var t in set.Tensors())
            t.MoveToOuterDisposeScope();
        return set;
    }

    /// <summary>Accuracy of the base model with <paramref name="adapter"/> (null: the base alone) on a task.</summary>
    public static TaskEvaluation Accuracy(GeneratorData data, TaskData task, LoraSet? adapter, int limit, string name) =>
        TaskEvaluator.Evaluate(new Qwen2EvaluatedModel(data.Model, "base", adapter, name), data.Tokenizer, task,
            new EvaluationOptions { Limit = limit, Format = PromptFormat.Bare });

    /// <summary>Evaluates the generator on <paramref name="task"/>: one accuracy per evaluation condition.</summary>
    public static MethodTaskResult EvaluateGenerated(
        LoraGenerator generator, GeneratorData data, GeneratorConfig config, TaskData task, string method = "generated")
    {
        using var batched = Generate(generator, data, config, task.Spec.Name);
        var accuracies = new List<double>();
        var n = 0;
        for (var i = 0; i < batched.Count; i++)
        {
            using var one = BatchedLoraSets.Select(batched, i);
            var result = Accuracy(data, task, one, config.EvalLimit, method);
            accuracies.Add(result.Accuracy);
            n = result.N;
        }
        return Summarise(method, task, accuracies, n, DeltaCosine(data, batched, task.Spec.Name));
    }

    /// <summary>Evaluates one fixed adapter (or the base when null) on a task.</summary>
    public static MethodTaskResult EvaluateFixed(GeneratorData data, GeneratorConfig config, TaskData task, LoraSet? adapter, string method)
    {
        var result = Accuracy(data, task, adapter, config.EvalLimit, method);
        double? cosine = null;
        if (adapter is not null)
        {
            using var _ = no_grad();
            using var delta = data.Embedder.Compute(adapter);
            cosine = Cosine(delta.unsqueeze(0), OracleDelta(data, task.Spec.Name));
        }
        return Summarise(method, task, [result.Accuracy], result.N, cosine);
    }

    /// <summary>The delta of the task's last teacher checkpoint (the oracle).</summary>
    public static Tensor OracleDelta(GeneratorData data, string task) => data.Teachers.Entries[data.Teachers.ByTask[task][^1]].Delta;

    /// <summary>Mean cosine between each adapter's delta and the oracle's.</summary>
    public static double DeltaCosine(GeneratorData data, LoraSet batched, string task)
    {
        using var _ = no_grad();
        using var deltas = data.Embedder.ComputeBatched(batched);
        return Cosine(deltas, OracleDelta(data, task));
    }

    static double Cosine(Tensor rows, Tensor target)
    {
        using var scope = NewDisposeScope();
        var t = target.to(rows.device).unsqueeze(0).expand_as(rows);
        return nn.functional.cosine_similarity(rows, t, 1).mean().item<float>();
    }

    static MethodTaskResult Summarise(string method, TaskData task, IReadOnlyList<double> accuracies, int n, double? cosine)
    {
        var mean = accuracies.Average();
        var std = accuracies.Count > 1 ? Math.Sqrt(accuracies.Sum(a => (a - mean) * (a - mean)) / (accuracies.Count - 1)) : 0;
        return new MethodTaskResult(method, task.Spec.Name, task.Spec.Domain, accuracies, mean, std, n, cosine);
    }

    /// <summary>
    /// The condition sensitivity of the generator over <paramref name="tasks"/>: <see cref="GeneratorConfig.EvalBatches"/>
    /// adapters per task from different prompt batches (at least two).
    /// </summary>
    public static ConditionSensitivity Sensitivity(LoraGenerator generator, GeneratorData data, GeneratorConfig config, IReadOnlyList<TaskData> tasks)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var batches = Math.Max(2, config.EvalBatches);
        var names = tasks.SelectMany(t => Enumerable.Repeat(t.Spec.Name, batches)).ToList();
        var seeds = tasks.SelectMany(t => Enumerable.Range(0, batches).Select(i => ConditionSeed(config.Seed, t.Spec.Name, i))).ToList();
        var conditions = data.Conditions.SampleMany(names, config.ConditionPrompts, seeds).to(data.Model.Device);
        using var set = generator.Generate(conditions);
        return ConditionSensitivity.Of(AdapterGram.Of(set), names);
    }
}
