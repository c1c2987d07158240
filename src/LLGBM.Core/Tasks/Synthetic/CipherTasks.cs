namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "cipher": the prompt is "code " and a random word of 3–5 letters followed by " :" (e.g. "code kqzm :");
/// tasks are letter-by-letter substitutions: the shift-k family (Caesar shifts, k = 1…5, with members held out) and
/// atbash (a↔z, b↔y, …).
/// </summary>
public static class CipherTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "cipher";

    /// <summary>The values of k in the shift-k family.</summary>
    public static readonly int[] ShiftK = [1, 2, 3, 4, 5];

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All()
    {
        var tasks = ShiftK
            .Select(k => Make($"shift-{k}", $"Shift {k}.", $"each letter shifted {k} places forward (z wraps to a)", c => (char)('a' + (c - 'a' + k) % 26), "shift-k", k))
            .ToList();
        tasks.Add(Make("atbash", "Mirror.", "each letter mirrored in the alphabet (a and z swap)", c => (char)('z' - (c - 'a'))));
        return tasks;
    }

    static SyntheticTask Make(string name, string instruction, string answer, Func<char, char> f, string? family = null, int? parameter = null) => new()
    {
        Spec = new TaskSpec
        {
            Name = name,
            Domain = Domain,
            Kind = TaskKind.Generation,
            Extraction = AnswerExtraction.FirstLine,
            Instruction = instruction,
            Description = $"Synthetic: a word of 3-5 letters; the answer is {answer}.",
        },
        Family = family,
        FamilyParameter = parameter,
        Sample = random =>
        {
            var word = StringTasks.RandomWord(random);
            return new TaskExample { Prompt = $"code {word} :", Answer = new string(word.Select(f).ToArray()) };
        },
    };
}
