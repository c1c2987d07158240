namespace LLGBM.Tasks;

/// <summary>
/// The union of two tasks as one task: every training and test example of both, interleaved deterministically
/// (first[0], second[0], first[1], second[1], …, then the rest of the longer split), so that the mixture's first 2n
/// test examples are exactly the first n of each component's test split. Both tasks must be generation tasks or both
/// multiple choice; the mixture keeps the shared answer extraction, or first-line extraction when they differ.
/// </summary>
public static class TaskMixture
{
    /// <summary>The domain of a mixture task.</summary>
    public const string Domain = "mixture";

    /// <summary>The default name of the mixture of <paramref name="first"/> and <paramref name="second"/>.</summary>
    public static string Name(string first, string second) => $"mix-{first}+{second}";

    /// <summary>The mixture of two tasks, named <paramref name="name"/> (default <see cref="Name"/>).</summary>
    /// <exception cref="LlgbmException">The tasks are one task, of different kinds, or a split of either is empty.</exception>
    public static TaskData Union(TaskData first, TaskData second, string? name = null)
    {
        var a = first.Spec;
        var b = second.Spec;
        if (a.Name == b.Name)
            throw new LlgbmException($"Task mixture: {a.Name} mixed with itself; name two different tasks.");
        if (a.Kind != b.Kind)
            throw new LlgbmException(
                $"Task mixture: {a.Name} is {TaskDirectory.KindName(a.Kind)} but {b.Name} is {TaskDirectory.KindName(b.Kind)}; both must be of one kind.");
        foreach (var (task, split, examples) in new[]
                 { (a.Name, "train", first.Train), (a.Name, "test", first.Test), (b.Name, "train", second.Train), (b.Name, "test", second.Test) })
            if (examples.Count == 0)
                throw new LlgbmException($"Task mixture: {task} has no {split} examples.");
        var spec = new TaskSpec
        {
            Name = PathNames.Validate(name ?? Name(a.Name, b.Name), "the mixture's name", "Task mixture"),
            Domain = Domain,
            Kind = a.Kind,
            Extraction = a.Extraction == b.Extraction ? a.Extraction : AnswerExtraction.FirstLine,
            Description = $"Mixture: every example of {a.Name} ({a.Domain}) and of {b.Name} ({b.Domain}), interleaved one by one.",
            Components = [a.Name, b.Name],
        };
        return new TaskData(spec, Interleave(first.Train, second.Train), Interleave(first.Test, second.Test));
    }

    /// <summary>first[0], second[0], first[1], second[1], …, then the rest of the longer list.</summary>
    public static IReadOnlyList<T> Interleave<T>(IReadOnlyList<T> first, IReadOnlyList<T> second)
    {
        var result = new List<T>(first.Count + second.Count);
        for (var i = 0; i < Math.Max(first.Count, second.Count); i++)
        {
            if (i < first.Count)
                result.Add(first[i]);
            if (i < second.Count)
                result.Add(second[i]);
        }
        return result;
    }
}
