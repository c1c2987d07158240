namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "arithmetic": the prompt is a three-digit number 000–999 followed by " =" (e.g. "047 ="); the answer is a
/// function of it modulo 1000, also written with three digits ("050" for add-3), so that answer digits stay aligned
/// with input digits. The add-k family (k = 1…6) has members held out for generator experiments.
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
            Description = $"Synthetic: a number x in 000-999 (three digits); the answer is {formula} mod 1000, three digits.",
        },
        Family = family,
        FamilyParameter = parameter,
        Sample = random =>
        {
            var x = random.Next(0, 1000);
            return new TaskExample { Prompt = $"{x:D3} =", Answer = (f(x) % 1000).ToString("D3", System.Globalization.CultureInfo.InvariantCulture) };
        },
    };
}
