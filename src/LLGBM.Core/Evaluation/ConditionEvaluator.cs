namespace LLGBM.Evaluation;

/// <summary>
/// Evaluating a method on a task averages over several independently sampled conditions (prompt batches), never one
/// fixed condition: one evaluation per condition, then the mean and spread.
/// </summary>
public static class ConditionEvaluator
{
    /// <summary>
    /// Runs <paramref name="evaluateOne"/> once for each condition, in order, and summarises the accuracies. Refuses
    /// fewer than <paramref name="minConditions"/> conditions (at least 2), repeated conditions (by
    /// <see cref="EqualityComparer{T}.Default"/>), and evaluations of another task than <paramref name="task"/>.
    /// </summary>
    public static ConditionedAccuracy EvaluateOverConditions<TCondition>(
        string task, IReadOnlyList<TCondition> conditions, Func<TCondition, TaskEvaluation> evaluateOne, int minConditions = 3)
    {
        if (minConditions < 2)
            throw new LlgbmException($"Task {task}: an average over conditions needs at least 2 of them; minConditions is {minConditions}.");
        if (conditions.Count < minConditions)
            throw new LlgbmException(
                $"Task {task}: {conditions.Count} condition(s) given, but the mean needs at least {minConditions} independently sampled ones (prompt " +
                $"batches).");
        if (conditions.Distinct().Count() != conditions.Count)
            throw new LlgbmException($"Task {task}: the conditions repeat; each evaluation needs its own independently sampled condition.");

        var evaluations = new List<TaskEvaluation>(conditions.Count);
        foreach (var condition in conditions)
        {
            var evaluation = evaluateOne(condition);
            if (evaluation.Task != task)
                throw new LlgbmException($"Evaluating task {task} over conditions: a condition's evaluation is of task {evaluation.Task}.");
            evaluations.Add(evaluation);
        }
        var accuracies = evaluations.Select(e => e.Accuracy).ToArray();
        var mean = accuracies.Average();
        var variance = accuracies.Sum(a => (a - mean) * (a - mean)) / (accuracies.Length - 1);
        return new ConditionedAccuracy { Task = task, Mean = mean, Std = Math.Sqrt(variance), Accuracies = accuracies, Evaluations = evaluations };
    }
}
