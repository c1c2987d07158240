namespace LLGBM.Tasks.Synthetic;

/// <summary>
/// Domain "keywords": the prompt lists three words from fixed lexicons of animals, fruits, colours and tools,
/// "words: red cat pear ?"; tasks classify the list by keyword (yes/no) or name the first word's category.
/// Yes/no tasks are balanced: half of their examples contain a word of the asked category.
/// </summary>
public static class KeywordTasks
{
    /// <summary>The domain name.</summary>
    public const string Domain = "keywords";

    /// <summary>The lexicons by category.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Lexicon = new Dictionary<string, string[]>
    {
        ["animal"] = ["cat", "dog", "cow", "pig", "fox", "owl", "bee", "ant", "rat", "hen", "yak", "elk", "emu", "ram", "bat"],
        ["fruit"] = ["fig", "kiwi", "lime", "pear", "plum", "apple", "mango", "peach", "grape", "melon", "lemon", "date", "olive"],
        ["color"] = ["red", "blue", "green", "pink", "gray", "black", "white", "brown", "gold", "teal", "tan", "navy"],
        ["tool"] = ["saw", "drill", "hammer", "wrench", "spade", "rake", "axe", "file", "chisel", "pliers", "clamp"],
    };

    static readonly string[] Categories = ["animal", "fruit", "color", "tool"];

    /// <summary>All tasks of the domain.</summary>
    public static IReadOnlyList<SyntheticTask> All() =>
    [
        HasCategory("has-animal", "animal", "Animal?"),
        HasCategory("has-fruit", "fruit", "Fruit?"),
        HasCategory("has-color", "color", "Colour?"),
        new SyntheticTask
        {
            Spec = Spec("first-kind", "First kind?", "the category (animal, fruit, color, tool) of the first word", AnswerExtraction.FirstLine),
            Sample = random =>
            {
                var words = Enumerable.Range(0, 3).Select(_ => Categories[random.Next(Categories.Length)]).ToArray();
                return Example(random, words, words[0]);
            },
        },
    ];

    static TaskSpec Spec(string name, string instruction, string answer, AnswerExtraction extraction) => new()
    {
        Name = name,
        Domain = Domain,
        Kind = TaskKind.Generation,
        Extraction = extraction,
        Instruction = instruction,
        Description = $"Synthetic: three words from fixed lexicons; the answer is {answer}.",
    };

    static SyntheticTask HasCategory(string name, string category, string instruction) => new()
    {
        Spec = Spec(name, instruction, $"yes when a word is a {category}, else no", AnswerExtraction.YesNo),
        Sample = random =>
        {
            var yes = random.Next(2) == 1;
            var others = Categories.Where(c => c != category).ToArray();
            var kinds = Enumerable.Range(0, 3).Select(_ => others[random.Next(others.Length)]).ToArray();
            if (yes)
            {
                // one to three words of the asked category, at random places
                var count = random.Next(1, 4);
                foreach (var place in Enumerable.Range(0, 3).OrderBy(_ => random.Next()).Take(count))
                    kinds[place] = category;
            }
            return Example(random, kinds, yes ? "yes" : "no");
        },
    };

    static TaskExample Example(Random random, string[] kinds, string answer)
    {
        var words = kinds.Select(k => Lexicon[k][random.Next(Lexicon[k].Length)]);
        return new TaskExample { Prompt = $"words: {string.Join(' ', words)} ?", Answer = answer };
    }
}
