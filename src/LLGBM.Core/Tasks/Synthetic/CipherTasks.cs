namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "cipher": the prompt is "code " and a random code word of 4 symbols from the eight letters a–h followed by
/// " :" (e.g. "code bhad :"); tasks are symbol-by-symbol substitutions within a–h: the shift-k family (shifts by k
/// places, h wrapping to a; k = 1…5, with members held out) and atbash (a↔h, b↔g, …).
/// </summary>
public static class CipherTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "cipher";

    /// <summary>The code alphabet: the first <see cref="AlphabetSize"/> letters.</summary>
    public const int AlphabetSize = 8;

    /// <summary>The values of k in the shift-k family.</summary>
    public static readonly int[] ShiftK = [1, 2, 3, 4, 5];

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All()
    {
        var tasks = ShiftK
            .Select(k => Make(
                $"shift-{k}", $"Shift {k}.", $"each letter shifted {k} places forward within a-h (h wraps to a)",
                c => (char)('a' + (c - 'a' + k) % AlphabetSize), "shift-k", k))
            .ToList();
        tasks.Add(Make("atbash", "Mirror.", "each letter mirrored within a-h (a and h swap)", c => (char)('a' + AlphabetSize - 1 - (c - 'a'))));
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
            Description = $"Synthetic: a code word of 4 letters from a-h; the answer is {answer}.",
        },
        Family = family,
        FamilyParameter = parameter,
        Sample = random =>
        {
            var word = new string(Enumerable.Range(0, 4).Select(_ => (char)('a' + random.Next(AlphabetSize))).ToArray());
            return new TaskExample { Prompt = $"code {word} :", Answer = new string(word.Select(f).ToArray()) };
        },
    };
}
