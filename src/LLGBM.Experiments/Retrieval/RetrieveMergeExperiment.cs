using System.Text.Json.Nodes;
using LLGBM.Algebra;
using LLGBM.Checkpoints;
using LLGBM.Delta;
using LLGBM.Evaluation;
using LLGBM.Model;
using LLGBM.Tasks;
using LLGBM.Text;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>
/// The B2 experiment on run directories (<c>llgbm retrieve-merge</c>): a held-out task, where everything lives, and
/// the choices. The steps are the algebra's <see cref="RetrieveMerge"/>; this wires them to a model and a tokenizer.
/// </summary>
public sealed record RetrieveMergeSettings
{
    /// <summary>The base checkpoint (with its tokenizer).</summary>
    public required string Base { get; init; }

    /// <summary>The task suite's root (one directory per task).</summary>
    public required string Tasks { get; init; }

    /// <summary>The teacher pool's root (its manifest.json).</summary>
    public required string Teachers { get; init; }

    /// <summary>The delta cache (<c>llgbm deltas compute</c>).</summary>
    public required string Deltas { get; init; }

    /// <summary>The held-out task: its teachers leave the pool and its conditions leave the lookup library.</summary>
    public required string Task { get; init; }

    /// <summary>The probes the cached deltas were computed with (default: the generic ones).</summary>
    public ProbeSet Probes { get; init; } = ProbeSet.Generic();

    /// <summary>The delta spec the cached deltas were computed with.</summary>
    public DeltaSpec Spec { get; init; } = DeltaSpec.Default;

    /// <summary>
    /// Other tasks whose teachers leave the pool too (the split's other held-out tasks, so that the pool holds the
    /// training tasks a generator would see).
    /// </summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];

    /// <summary>Retrieval and merges (default: k = 3 tasks, cosine, uniform; average and TIES).</summary>
    public RetrieveMerge.Settings Retrieval { get; init; } = RetrieveMerge.Settings.Default;

    /// <summary>The number of conditions (prompt batches of the held-out task) evaluated, at least 3.</summary>
    public int Conditions { get; init; } = 3;

    /// <summary>The number of examples K in a condition.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Whether conditions carry answers.</summary>
    public PromptBatchMode Mode { get; init; } = PromptBatchMode.PromptsWithAnswers;

    /// <summary>The number of library conditions per training task.</summary>
    public int LibraryBatches { get; init; } = 4;

    /// <summary>The seed of the conditions and the library.</summary>
    public long Seed { get; init; }

    /// <summary>Test examples evaluated per condition (0 for all).</summary>
    public int Limit { get; init; } = 100;

    /// <summary>Where the model runs.</summary>
    public Device Device { get; init; } = CPU;
}

/// <summary>What <see cref="RetrieveMergeExperiment.Run"/> found.</summary>
/// <param name="Settings">The experiment.</param>
/// <param name="Pool">The pool used (every cached teacher but the held-out and excluded tasks').</param>
/// <param name="Base">The base model without an adapter on the task (bare prompts).</param>
/// <param name="MeanTeacher">The mean teacher control: the average of every training task's last kept adapter.</param>
/// <param name="Summary">The conditions' outcomes and each merge's accuracy over them.</param>
public sealed record RetrieveMergeResult(
    RetrieveMergeSettings Settings, IReadOnlyList<RetrieveMerge.PoolEntry> Pool, TaskEvaluation Base,
    TaskEvaluation MeanTeacher, RetrieveMerge.Summary Summary)
{
    /// <summary>
    /// The result as JSON: the task, the base model's and the mean teacher's accuracy, each merge's mean, sample
    /// standard deviation and per-condition accuracies, and each condition's prediction source, retrieved teachers
    /// (task, step, adapter, score, weight) and accuracies by merge.
    /// </summary>
    public JsonObject ToJson()
    {
        var s = Settings;
        var outcomes = Summary.Outcomes.ToList();
        return new JsonObject
        {
            ["task"] = s.Task,
            ["k"] = (double)s.Retrieval.K,
            ["one_per_task"] = s.Retrieval.OnePerTask,
            ["similarity"] = s.Retrieval.Similarity.Name,
            ["weighting"] = s.Retrieval.Weighting.Describe(),
            ["conditions"] = (double)s.Conditions,
            ["batch_size"] = (double)s.BatchSize,
            ["mode"] = s.Mode == PromptBatchMode.PromptsWithAnswers ? "prompts-with-answers" : "prompts-only",
            ["pool"] = (double)Pool.Count,
            ["sign_conflicts"] = outcomes.Average(o => o.SignConflicts),
            ["sign_conflicts_trimmed"] = outcomes.Average(o => o.TrimmedSignConflicts),
            ["trim_density"] = RetrieveMerge.SignConflictDensity(s.Retrieval),
            ["base"] = Base.Accuracy,
            ["mean_teacher"] = MeanTeacher.Accuracy,
            ["merges"] = new JsonArray([.. Summary.ByMerge.Select(pair => (JsonNode)new JsonObject
            {
                ["merge"] = pair.Item1.Describe(),
                ["method"] = pair.Item1.Method.Name,
                ["mean"] = pair.Item2.Mean,
                ["std"] = pair.Item2.Std,
                ["accuracies"] = new JsonArray([.. pair.Item2.Accuracies.Select(a => (JsonNode)a)]),
            })]),
            ["outcomes"] = new JsonArray([.. outcomes.Select(o => (JsonNode)new JsonObject
            {
                ["condition_seed"] = (double)o.Condition.Seed,
                ["source"] = o.Predicted.Source,
                ["retrieved"] = new JsonArray([.. o.Retrieved.Zip(o.Weights, (h, w) => (JsonNode)new JsonObject
                {
                    ["task"] = h.Item.Task,
                    ["step"] = (double)h.Item.Step,
                    ["adapter"] = h.Item.AdapterDir,
                    ["score"] = h.Score,
                    ["weight"] = w,
                })]),
                ["sign_conflicts"] = o.SignConflicts,
                ["sign_conflicts_trimmed"] = o.TrimmedSignConflicts,
                ["accuracy"] = new JsonObject(o.Results.Select(r =>
                    KeyValuePair.Create(r.Merge.Method.Name, (JsonNode?)r.Evaluation.Accuracy))),
            })]),
        };
    }
}

/// <summary>
/// Runs the B2 baseline, retrieve and merge, on a held-out task: the cached deltas of the pool (the held-out task's
/// left out), a nearest-condition library of the training tasks (each task's mean delta over its kept adapters,
/// n-gram condition embedding), <see cref="RetrieveMergeSettings.Conditions"/> prompt batches of the held-out task
/// through <see cref="RetrieveMerge.Run"/>, and the base model and mean teacher beside them.
/// </summary>
public static class RetrieveMergeExperiment
{
    /// <summary>Runs the experiment; <paramref name="progress"/> receives a line per step.</summary>
    public static RetrieveMergeResult Run(RetrieveMergeSettings s, Action<string>? progress = null)
    {
        var tasks = TaskSuite.LoadAll(s.Tasks).ToDictionary(t => t.Spec.Name, StringComparer.Ordinal);
        if (!tasks.TryGetValue(s.Task, out var heldOut))
            throw new LlgbmException(
                $"{s.Tasks}: no task {s.Task}; the suite has {string.Join(", ", tasks.Keys.Order(StringComparer.Ordinal))}.");

        progress?.Invoke($"loading the cached deltas from {s.Deltas}");
        var loaded = DeltaCache.Load(s.Deltas, s.Base, s.Probes, s.Spec);
        RetrieveMerge.PoolEntry[] pool;
        try
        {
            pool = [.. RetrieveMerge.PoolOf(s.Teachers, loaded).Where(p => p.Task != s.Task && !s.Exclude.Contains(p.Task))];
        }
        finally
        {
            foreach (var d in loaded)
                d.Dispose();
        }
        if (pool.Length == 0)
            throw new LlgbmException($"{s.Deltas}: no cached deltas of teachers other than {s.Task}.");

        var trainingTasks = pool.GroupBy(p => p.Task)
            .Where(g => tasks.ContainsKey(g.Key))
            .Select(g => Tuple.Create(tasks[g.Key], Compose.Mean(g.Select(p => p.Delta))))
            .ToArray();
        progress?.Invoke(
            $"pool: {pool.Length} teacher adapters of {trainingTasks.Length} tasks; library: {s.LibraryBatches} conditions per task");
        var embed = FuncConvert.FromFunc<PromptBatch, float[]>(NearestCondition.DefaultEmbedding);
        var library = NearestCondition.LibraryOfTasks(embed, s.BatchSize, s.LibraryBatches, s.Seed, s.Mode, trainingTasks);
        var predict = FuncConvert.FromFunc<PromptBatch, RetrieveMerge.Prediction>(
            condition => RetrieveMerge.NearestConditionPredictor(embed, library, condition));
        var conditions = PromptBatches.SampleMany(heldOut, s.BatchSize, s.Conditions, Seeds.Derive(s.Seed, 1), s.Mode);

        using var model = Qwen2Checkpoint.Load(s.Base, s.Device, ScalarType.Float32);
        model.eval();
        var tokenizer = Tokenizers.Load(s.Base);
        var options = new EvaluationOptions { Format = PromptFormat.Bare, Limit = s.Limit > 0 ? s.Limit : null };
        var evaluate = Evaluator(model, tokenizer, heldOut, options);
        using var teachers = new TeacherVectors(model.Config);

        progress?.Invoke($"evaluating the base model on {s.Task}");
        var baseline = TaskEvaluator.Evaluate(new Qwen2EvaluatedModel(model, "base"), tokenizer, heldOut, options);

        progress?.Invoke("evaluating the mean teacher (the average of every training task's last adapter)");
        TaskEvaluation meanTeacher;
        {
            var last = pool.GroupBy(p => p.Task).Select(g => g.MaxBy(p => p.Step)!).ToArray();
            using var mean = ReferenceAdapters.MeanTeacher(last.Select(teachers.Load));
            meanTeacher = evaluate.Invoke($"mean teacher of {last.Length} tasks").Invoke(mean);
        }

        var memoised = RetrieveMerge.Memoise(evaluate);
        var load = FuncConvert.FromFunc<RetrieveMerge.PoolEntry, TaskVector>(teachers.Load);
        var outcomes = new List<RetrieveMerge.Outcome>();
        foreach (var condition in conditions)
        {
            var outcome = RetrieveMerge.Run(predict, load, memoised, s.Retrieval, pool, condition);
            var results = string.Join(", ", outcome.Results.Select(r => $"{r.Merge.Method.Name} {r.Evaluation.Accuracy:F3}"));
            var retrieved = string.Join(", ", outcome.Retrieved.Select(h => h.Item.ToString()));
            progress?.Invoke(
                $"condition {outcomes.Count + 1}/{conditions.Count}: {outcome.Predicted.Source}; retrieved {retrieved}; {results}");
            outcomes.Add(outcome);
        }
        return new RetrieveMergeResult(s, pool, baseline, meanTeacher, RetrieveMerge.Summarise(s.Task, s.Retrieval, outcomes));
    }

    /// <summary>
    /// An evaluator of task vectors on <paramref name="task"/>: the vector applied densely to <paramref name="model"/>
    /// in each forward pass, scored by <see cref="TaskEvaluator.Evaluate"/>; the label names the adapter in the result.
    /// </summary>
    public static FSharpFunc<string, FSharpFunc<TaskVector, TaskEvaluation>> Evaluator(
        Qwen2ForCausalLM model, ITokenizer tokenizer, TaskData task, EvaluationOptions options) =>
        FuncConvert.FromFunc<string, TaskVector, TaskEvaluation>((name, tau) =>
        {
            using var lora = TaskVectorModule.ToDenseLoraOn(model.Device, ScalarType.Float32, tau);
            return TaskEvaluator.Evaluate(new Qwen2EvaluatedModel(model, "base", lora, name), tokenizer, task, options);
        });
}
