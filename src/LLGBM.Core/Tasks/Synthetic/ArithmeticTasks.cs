namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "arithmetic": the prompt is a number 0–999 followed by " =" (e.g. "417 ="); tasks differ in the function
/// applied. The add-k family (k = 1…6) has members held out for generator experiments.
/// </summary>
public static class ArithmeticTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "arithmetic";

    /// <summary>The values of k in the add-k family.</summary>
    public static readonly int[] AddK = [1, 2, 3, 4, 5, 6];

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All()
    {
        var tasks = AddK.Select(k => Make($"add-{k}", $"Add {k}.", $"x + {k}", x => x + k, "add-k", k)).ToList();
        tasks.Add(Make("double", "Double.", "2x", x => 2 * x));
        tasks.Add(Make("half", "Halve.", "floor(x / 2)", x => x / 2));
        return tasks;
    }

    static SyntheticTask Make(string name, string instruction, string formula, Func<int, int> f, string? family = null, int? parameter = null) => new()
    {
        Spec = new TaskSpec
        {
            Name = name,
            Domain = Domain,
            Kind = TaskKind.Generation,
            Extraction = AnswerExtraction.FinalNumber,
            Instruction = instruction,
            Description = $"Synthetic: a number x in 0-999; the answer is {formula}.",
        },
        Family = family,
        FamilyParameter = parameter,
        Sample = random =>
        {
            var x = random.Next(0, 1000);
            return new TaskExample { Prompt = $"{x} =", Answer = f(x).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        },
    };
}
