using System.Security.Cryptography;
using System.Text;

namespace LLGBM.Tasks.Synthetic;

/// <summary>Settings of <see cref="SyntheticSuite.Build"/>.</summary>
public sealed record SyntheticSuiteSettings
{
    /// <summary>Seed of every example drawn.</summary>
    public long Seed { get; init; }

    /// <summary>Training examples per task (distinct prompts).</summary>
    public int TrainCount { get; init; } = 600;

    /// <summary>Test examples per task (distinct prompts, none of them in the training split).</summary>
    public int TestCount { get; init; } = 250;
}

/// <summary>
/// The synthetic benchmark: five domains whose tasks share an input format within the domain (so a prompt tells the
/// domain but not the task), parametric families with held-out members, and two-task mixtures across domains.
/// Deterministic for a seed.
/// </summary>
public static class SyntheticSuite
{
    /// <summary>Version of the suite's definition; part of every cache key built on it.</summary>
    public const int Version = 1;

    /// <summary>Family members held out from generator training (the <c>heldout-family</c> split).</summary>
    public static readonly IReadOnlyList<string> HeldOutFamilyMembers = ["add-4", "shift-3"];

    /// <summary>The task held out per domain in the <c>default</c> split.</summary>
    public static readonly IReadOnlyList<string> DefaultHeldOut = ["half", "rotate", "atbash", "first-kind", "closest-50"];

    /// <summary>The two-task mixtures (component tasks from different domains).</summary>
    public static readonly IReadOnlyList<(string First, string Second)> Mixtures =
        [("add-2", "reverse"), ("upper", "shift-1"), ("has-animal", "double"), ("rotate", "atbash")];

    /// <summary>Every single task of the suite, by domain.</summary>
    public static IReadOnlyList<SyntheticTask> Tasks() =>
        [.. ArithmeticTasks.All(), .. StringTasks.All(), .. CipherTasks.All(), .. KeywordTasks.All(), .. ComparisonTasks.All()];

    /// <summary>The name of the mixture of two tasks.</summary>
    public static string MixtureName(string first, string second) => $"mix-{first}+{second}";

    /// <summary>Draws every task's examples and the mixtures.</summary>
    public static IReadOnlyList<TaskData> Build(SyntheticSuiteSettings settings)
    {
        var tasks = Tasks();
        var data = tasks.Select(t => Draw(t, settings)).ToList();
        var byName = data.ToDictionary(d => d.Spec.Name);
        foreach (var (first, second) in Mixtures)
            data.Add(Mix(byName[first], byName[second], settings.Seed));
        return data;
    }

    /// <summary>
    /// The suite's splits: <c>default</c> (one task per domain and the held-out family members), <c>heldout-family</c>,
    /// and <c>loto-TASK</c> (leave one task out) for every single task. Mixtures are in no split's training set.
    /// </summary>
    public static IReadOnlyList<SuiteSplit> Splits()
    {
        var names = Tasks().Select(t => t.Name).ToList();
        SuiteSplit Split(string name, string description, IReadOnlyList<string> test) =>
            new(name, description, names.Where(n => !test.Contains(n)).ToList(), test);
        var splits = new List<SuiteSplit>
        {
            Split("default", "one held-out task per domain plus the held-out family members", [.. DefaultHeldOut, .. HeldOutFamilyMembers]),
            Split("heldout-family", "members of the add-k and shift-k families unseen in training", HeldOutFamilyMembers),
        };
        splits.AddRange(names.Select(n => Split($"loto-{n}", $"leave {n} out; its domain's other tasks are seen", [n])));
        return splits;
    }

    /// <summary>The seed of one task's examples: the suite seed combined with a stable hash of the task name.</summary>
    public static int TaskSeed(long suiteSeed, string taskName)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{suiteSeed}/{taskName}"));
        return BitConverter.ToInt32(hash, 0) & int.MaxValue;
    }

    static TaskData Draw(SyntheticTask task, SyntheticSuiteSettings settings)
    {
        var random = new Random(TaskSeed(settings.Seed, task.Name));
        var seen = new HashSet<string>();
        List<TaskExample> Take(int count)
        {
            var examples = new List<TaskExample>(count);
            for (var attempts = 0; examples.Count < count; attempts++)
            {
                if (attempts > 100 * (count + seen.Count))
                    throw new LlgbmException($"Synthetic task {task.Name}: could not draw {count} distinct prompts; lower the example counts.");
                var example = task.Sample(random);
                if (seen.Add(example.Prompt))
                    examples.Add(example);
            }
            return examples;
        }
        var train = Take(settings.TrainCount);
        var test = Take(settings.TestCount);
        return new TaskData(task.Spec, train, test);
    }

    static TaskData Mix(TaskData first, TaskData second, long seed)
    {
        var random = new Random(TaskSeed(seed, MixtureName(first.Spec.Name, second.Spec.Name)));
        List<TaskExample> Interleave(IReadOnlyList<TaskExample> a, IReadOnlyList<TaskExample> b)
        {
            var half = Math.Min(a.Count, b.Count) / 2;
            return a.Take(half).Concat(b.Take(half)).OrderBy(_ => random.Next()).ToList();
        }
        var spec = new TaskSpec
        {
            Name = MixtureName(first.Spec.Name, second.Spec.Name),
            Domain = "mixture",
            Kind = TaskKind.Generation,
            Extraction = AnswerExtraction.FirstLine,
            Description = $"Synthetic mixture: half the examples of {first.Spec.Name} ({first.Spec.Domain}), " +
                $"half of {second.Spec.Name} ({second.Spec.Domain}).",
            Components = [first.Spec.Name, second.Spec.Name],
        };
        return new TaskData(spec, Interleave(first.Train, second.Train), Interleave(first.Test, second.Test));
    }
}
