namespace LLGBM.Tasks;

/// <summary>The description of a task (<c>task.json</c> in a task directory).</summary>
public sealed record TaskSpec
{
    /// <summary>Unique name, also the directory name (e.g. "arith-add-3" or "arc-easy").</summary>
    public required string Name { get; init; }

    /// <summary>The domain the task belongs to (e.g. "arithmetic", "commonsense"); used for clustering and splits.</summary>
    public required string Domain { get; init; }

    /// <summary>Generation or multiple choice.</summary>
    public required TaskKind Kind { get; init; }

    /// <summary>How answers of a generation task are extracted before exact matching (ignored for multiple choice).</summary>
    public AnswerExtraction Extraction { get; init; } = AnswerExtraction.FirstLine;

    /// <summary>
    /// A short instruction naming the task, e.g. "Add 3 to the number." Models can be prompted with it
    /// ("instructed") or without it ("bare"); only an adapter can tell the task apart in the bare case.
    /// </summary>
    public string? Instruction { get; init; }

    /// <summary>Free text: the source of the data and anything a reader should know.</summary>
    public string? Description { get; init; }

    /// <summary>Task names this task mixes (for mixture tasks of the synthetic suite); empty otherwise.</summary>
    public IReadOnlyList<string> Components { get; init; } = [];

    /// <summary>The metric name reported for this task: "exact_match" or "choice_accuracy".</summary>
    public string Metric => Kind == TaskKind.Generation ? "exact_match" : "choice_accuracy";
}
