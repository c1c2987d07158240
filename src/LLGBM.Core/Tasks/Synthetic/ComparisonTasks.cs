namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "comparison" (multiple choice): the prompt lists four distinct numbers 10–99, "pick 34 71 12 55 :", and the
/// choices are those numbers in order; tasks differ in which number is right.
/// </summary>
public static class ComparisonTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "comparison";

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All() =>
    [
        Make("largest", "Largest.", "the largest number", Numbers, xs => Array.IndexOf(xs, xs.Max())),
        Make("smallest", "Smallest.", "the smallest number", Numbers, xs => Array.IndexOf(xs, xs.Min())),
        Make("closest-50", "Nearest 50.", "the number closest to 50", UniqueClosest, xs => ClosestTo50(xs)),
        Make("even", "Even.", "the only even number", OneEven, xs => Array.FindIndex(xs, x => x % 2 == 0)),
    ];

    static int[] Numbers(Random random)
    {
        var set = new HashSet<int>();
        while (set.Count < 4)
            set.Add(random.Next(10, 100));
        return set.OrderBy(_ => random.Next()).ToArray();
    }

    static int ClosestTo50(int[] xs) => Array.IndexOf(xs, xs.OrderBy(x => Math.Abs(x - 50)).First());

    static int[] UniqueClosest(Random random)
    {
        while (true)
        {
            var xs = Numbers(random);
            var distances = xs.Select(x => Math.Abs(x - 50)).Order().ToArray();
            if (distances[0] != distances[1])
                return xs;
        }
    }

    static int[] OneEven(Random random)
    {
        var set = new HashSet<int> { 2 * random.Next(5, 50) };
        while (set.Count < 4)
            set.Add(2 * random.Next(5, 50) + 1);
        return set.OrderBy(_ => random.Next()).ToArray();
    }

    static SyntheticTask Make(string name, string instruction, string answer, Func<Random, int[]> draw, Func<int[], int> pick) => new()
    {
        Spec = new TaskSpec
        {
            Name = name,
            Domain = Domain,
            Kind = TaskKind.MultipleChoice,
            Extraction = AnswerExtraction.ChoiceLetter,
            Instruction = instruction,
            Description = $"Synthetic multiple choice: four numbers 10-99; the right choice is {answer}.",
        },
        Sample = random =>
        {
            var xs = draw(random);
            var choices = xs.Select(x => x.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            return new TaskExample
            {
                Prompt = $"pick {string.Join(' ', choices)} :",
                Choices = choices,
                Answer = ((char)('A' + pick(xs))).ToString(),
            };
        },
    };
}
