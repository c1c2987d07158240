using LLGBM.Evaluation;
using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Experiments;

/// <summary>A model's accuracy on a task suite (<c>llgbm eval</c>): tasks chosen by name, every prompt format, with progress.</summary>
public static class SuiteEvaluation
{
    /// <summary>
    /// Evaluates every task in every format, in that order (task-major); <paramref name="log"/> gets progress lines
    /// (about every tenth of a task) and each result.
    /// </summary>
    public static IReadOnlyList<TaskEvaluation> EvaluateAll(
        IEvaluatedModel model, ITokenizer tokenizer, IReadOnlyList<TaskData> tasks, IReadOnlyList<PromptFormat> formats,
        EvaluationOptions options, Action<string>? log = null)
    {
        var results = new List<TaskEvaluation>();
        foreach (var task in tasks)
            foreach (var format in formats)
            {
                var label = $"{task.Spec.Name} ({PromptFormatNames.Name(format)})";
                var reported = 0;
                var result = TaskEvaluator.Evaluate(model, tokenizer, task, options with
                {
                    Format = format,
                    Progress = (done, total) =>
                    {
                        if (log is null || done * 10 / Math.Max(total, 1) <= reported)
                            return;
                        reported = done * 10 / total;
                        log($"{label}: {done}/{total}");
                    },
                });
                log?.Invoke($"{label}: {result.Metric} {result.Accuracy:F4} ({result.Correct}/{result.N})");
                results.Add(result);
            }
        return results;
    }

    /// <summary>The tasks named in <paramref name="names"/>, in the order given (all tasks when none are named); an error names unknown tasks.</summary>
    public static IReadOnlyList<TaskData> Select(IReadOnlyList<TaskData> tasks, IReadOnlyList<string> names)
    {
        if (names.Count == 0)
            return tasks;
        var byName = tasks.ToDictionary(t => t.Spec.Name, StringComparer.Ordinal);
        var unknown = names.Where(n => !byName.ContainsKey(n)).ToArray();
        if (unknown.Length > 0)
            throw new LlgbmException(
                $"--task: no task named {string.Join(", ", unknown)}; " +
                $"available: {string.Join(", ", tasks.Select(t => t.Spec.Name).Order(StringComparer.Ordinal))}.");
        return names.Distinct().Select(n => byName[n]).ToArray();
    }

    /// <summary>
    /// Refuses tasks without test examples (a task imported without <c>--test-input</c>, an emptied file): an accuracy
    /// over no examples is not a number to report. The error names the task and its <c>test.jsonl</c>.
    /// </summary>
    public static void RefuseEmptyTestSplits(string root, IReadOnlyList<TaskData> tasks)
    {
        if (tasks.FirstOrDefault(t => t.Test.Count == 0) is not { } empty)
            return;
        var directory = Directory.EnumerateFiles(root, TaskDirectory.SpecFileName, SearchOption.AllDirectories)
            .Select(spec => Path.GetDirectoryName(spec)!)
            .FirstOrDefault(d => TaskDirectory.ReadSpec(Path.Combine(d, TaskDirectory.SpecFileName)).Name == empty.Spec.Name);
        var file = directory is null ? $"{root}/…/{TaskDirectory.TestFileName}" : Path.Combine(directory, TaskDirectory.TestFileName);
        throw new LlgbmException(
            $"'{file}': task {empty.Spec.Name} has no test examples, so there is nothing to evaluate (add examples, e.g. tasks import --test-input, " +
            $"or leave the task out with --task).");
    }
}
