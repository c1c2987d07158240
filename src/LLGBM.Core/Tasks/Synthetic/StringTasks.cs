namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "strings": the prompt is a random lower-case word of 4 letters (a fixed length keeps answer letters aligned with input letters) followed by " ->"
/// (e.g. "kqzm ->");
/// tasks differ in the string operation.
/// </summary>
public static class StringTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "strings";

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All() =>
    [
        Make("reverse", "Reverse.", "the letters in reverse order", w => new string(w.Reverse().ToArray())),
        Make("upper", "Capitals.", "the word in capitals", w => w.ToUpperInvariant()),
        Make("rotate", "Rotate.", "the word with its first letter moved to the end", w => w[1..] + w[0]),
        Make("double-first", "Repeat first.", "the word with its first letter repeated", w => w[0] + w),
    ];

    /// <summary>A random word of <paramref name="min"/>–<paramref name="max"/> lower-case letters.</summary>
    public static string RandomWord(Random random, int min = 4, int max = 4)
    {
        var length = random.Next(min, max + 1);
        var letters = new char[length];
        for (var i = 0; i < length; i++)
            letters[i] = (char)('a' + random.Next(26));
        return new string(letters);
    }

    static SyntheticTask Make(string name, string instruction, string answer, Func<string, string> f) => new()
    {
        Spec = new TaskSpec
        {
            Name = name,
            Domain = Domain,
            Kind = TaskKind.Generation,
            Extraction = AnswerExtraction.FirstLine,
            Instruction = instruction,
            Description = $"Synthetic: a word of 4 letters; the answer is {answer}.",
        },
        Sample = random =>
        {
            var word = RandomWord(random);
            return new TaskExample { Prompt = $"{word} ->", Answer = f(word) };
        },
    };
}
