using System.Text.Encodings.Web;
using System.Text.Json;

namespace LLGBM.Tasks;

/// <summary>
/// Reads and writes task directories: <c>task.json</c> (the <see cref="TaskSpec"/>, snake_case keys) beside
/// <c>train.jsonl</c> and <c>test.jsonl</c>, one example per line:
/// <c>{"prompt": "…", "answer": "…"}</c>, or for multiple choice
/// <c>{"prompt": "…", "choices": ["…", "…"], "answer": "B"}</c>. Unknown keys are ignored on reading; blank lines are
/// allowed at the end of a JSONL file only. Every malformed line is a <see cref="TaskFormatException"/> naming the file,
/// the line and what was expected.
/// </summary>
public static class TaskDirectory
{
    /// <summary>The spec file of a task directory.</summary>
    public const string SpecFileName = "task.json";

    /// <summary>The training examples of a task directory.</summary>
    public const string TrainFileName = "train.jsonl";

    /// <summary>The held-out examples of a task directory.</summary>
    public const string TestFileName = "test.jsonl";

    /// <summary>The most choices a multiple-choice example may have (letters A to Z).</summary>
    public const int MaxChoices = 26;

    static readonly JsonSerializerOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static readonly JsonWriterOptions LineWriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static readonly JsonWriterOptions SpecWriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = true,
        NewLine = "\n",
    };

    /// <summary>True when <paramref name="directory"/> holds a <c>task.json</c>.</summary>
    public static bool IsTaskDirectory(string directory) => File.Exists(Path.Combine(directory, SpecFileName));

    /// <summary>Reads the task directory <paramref name="directory"/>: its spec and both splits.</summary>
    /// <exception cref="TaskFormatException">A file is missing or malformed.</exception>
    public static TaskData Load(string directory)
    {
        if (!Directory.Exists(directory))
            throw new TaskFormatException(directory, "no such task directory (expected task.json, train.jsonl and test.jsonl).");
        var spec = ReadSpec(Path.Combine(directory, SpecFileName));
        var train = ReadExamples(Path.Combine(directory, TrainFileName), spec.Kind);
        var test = ReadExamples(Path.Combine(directory, TestFileName), spec.Kind);
        return new TaskData(spec, train, test);
    }

    /// <summary>
    /// Writes <paramref name="task"/> into <paramref name="directory"/> (created when missing): <c>task.json</c>,
    /// <c>train.jsonl</c> and <c>test.jsonl</c>, each atomically (see <see cref="AtomicFile"/>). Examples are checked
    /// first with the rules <see cref="Load"/> applies, so nothing is written that could not be read back.
    /// </summary>
    /// <exception cref="TaskFormatException">The spec or an example breaks a rule; nothing is written then.</exception>
    public static void Save(string directory, TaskData task)
    {
        var specPath = Path.Combine(directory, SpecFileName);
        var trainPath = Path.Combine(directory, TrainFileName);
        var testPath = Path.Combine(directory, TestFileName);
        CheckSpec(specPath, task.Spec);
        CheckExamples(trainPath, task.Train, task.Spec.Kind);
        CheckExamples(testPath, task.Test, task.Spec.Kind);
        Directory.CreateDirectory(directory);
        AtomicFile.Write(specPath, stream => WriteSpec(stream, task.Spec));
        AtomicFile.Write(trainPath, stream => WriteExamples(stream, task.Train));
        AtomicFile.Write(testPath, stream => WriteExamples(stream, task.Test));
    }

    /// <summary>Reads a <c>task.json</c>. Unknown keys (such as the derived "metric") are ignored.</summary>
    /// <exception cref="TaskFormatException">The file is missing, not a JSON object, or a field is missing or invalid.</exception>
    public static TaskSpec ReadSpec(string path)
    {
        if (!File.Exists(path))
            throw new TaskFormatException(path, "no such file (a task directory holds task.json).");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(TextFiles.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new TaskFormatException(path, $"not valid JSON ({e.Message}).", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new TaskFormatException(path, $"expected a JSON object, found {Describe(root)}.");
            var name = RequiredString(path, root, "name");
            CheckName(path, "\"name\"", name);
            var domain = RequiredString(path, root, "domain");
            var kindText = RequiredString(path, root, "kind");
            var kind = ParseKind(kindText)
                ?? throw new TaskFormatException(path, $"\"kind\" must be \"generation\" or \"multiple_choice\", found \"{kindText}\".");
            var extraction = AnswerExtraction.FirstLine;
            if (OptionalString(path, root, "extraction") is { } extractionText)
                extraction = ParseExtraction(extractionText)
                    ?? throw new TaskFormatException(path,
                        $"\"extraction\" must be one of {string.Join(", ", Enum.GetValues<AnswerExtraction>().Select(e => $"\"{ExtractionName(e)}\""))}, " +
                        $"found \"{extractionText}\".");
            var components = new List<string>();
            if (root.TryGetProperty("components", out var list) && list.ValueKind != JsonValueKind.Null)
            {
                if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(c => c.ValueKind != JsonValueKind.String))
                    throw new TaskFormatException(path, $"\"components\" must be a list of task names (strings), found {Describe(list)}.");
                components.AddRange(list.EnumerateArray().Select(c => c.GetString()!));
                foreach (var component in components)
                    CheckName(path, "a task in \"components\"", component);
            }
            return new TaskSpec
            {
                Name = name,
                Domain = domain,
                Kind = kind,
                Extraction = extraction,
                Instruction = OptionalString(path, root, "instruction"),
                Description = OptionalString(path, root, "description"),
                Components = components,
            };
        }
    }

    /// <summary>
    /// Reads one JSONL split of a task of kind <paramref name="kind"/>: one JSON object per line, blank lines only at
    /// the end.
    /// </summary>
    /// <exception cref="TaskFormatException">The file is missing or a line is malformed (the message names the line).</exception>
    public static IReadOnlyList<TaskExample> ReadExamples(string path, TaskKind kind)
    {
        if (!File.Exists(path))
            throw new TaskFormatException(path, "no such file (a task directory holds train.jsonl and test.jsonl).");
        var examples = new List<TaskExample>();
        var lineNumber = 0;
        int? firstBlank = null;
        foreach (var line in TextFiles.ReadAllLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                firstBlank ??= lineNumber;
                continue;
            }
            if (firstBlank is { } blank)
                throw new TaskFormatException(path, blank, "blank line between examples (blank lines are allowed only at the end of the file).");
            examples.Add(ParseExample(path, lineNumber, line, kind));
        }
        return examples;
    }

    /// <summary>Parses one JSONL line into an example of a task of kind <paramref name="kind"/>.</summary>
    /// <exception cref="TaskFormatException">The line is malformed; the message names <paramref name="path"/> and <paramref name="lineNumber"/>.</exception>
    public static TaskExample ParseExample(string path, int lineNumber, string line, TaskKind kind)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new TaskFormatException(path, lineNumber, $"not JSON: expected one JSON object per line ({e.Message}).");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new TaskFormatException(path, lineNumber, $"expected a JSON object, found {Describe(root)}.");
            string LineString(string key)
            {
                if (!root.TryGetProperty(key, out var value))
                    throw new TaskFormatException(path, lineNumber, $"missing \"{key}\" (expected a string).");
                if (value.ValueKind != JsonValueKind.String)
                    throw new TaskFormatException(path, lineNumber, $"\"{key}\" must be a string, found {Describe(value)}.");
                return value.GetString()!;
            }
            var prompt = LineString("prompt");
            var answer = LineString("answer");
            List<string>? choices = null;
            if (root.TryGetProperty("choices", out var list) && list.ValueKind != JsonValueKind.Null)
            {
                if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(c => c.ValueKind != JsonValueKind.String))
                    throw new TaskFormatException(path, lineNumber, $"\"choices\" must be a list of strings, found {Describe(list)}.");
                choices = [.. list.EnumerateArray().Select(c => c.GetString()!)];
            }
            var example = new TaskExample { Prompt = prompt, Answer = answer, Choices = choices };
            if (Problem(example, kind) is { } problem)
                throw new TaskFormatException(path, lineNumber, problem);
            return example;
        }
    }

    /// <summary>
    /// What is wrong with <paramref name="example"/> as an example of a task of kind <paramref name="kind"/>, or null
    /// when nothing is: the prompt and answer must be non-empty; a generation example has no choices; a
    /// multiple-choice example has 2 to 26 non-empty choices and its answer is the letter of one of them.
    /// </summary>
    public static string? Problem(TaskExample example, TaskKind kind)
    {
        if (string.IsNullOrWhiteSpace(example.Prompt))
            return "empty \"prompt\" (expected the input text).";
        if (string.IsNullOrWhiteSpace(example.Answer))
            return "empty \"answer\".";
        if (kind == TaskKind.Generation)
            return example.Choices is null
                ? null
                : "\"choices\" in a generation task (only multiple-choice tasks list choices; check \"kind\" in task.json).";
        if (example.Choices is not { } choices)
            return "missing \"choices\" (a multiple-choice task lists the choices of every example).";
        if (choices.Count < 2 || choices.Count > MaxChoices)
            return $"\"choices\" must hold 2 to {MaxChoices} choices, found {choices.Count}.";
        for (var i = 0; i < choices.Count; i++)
            if (string.IsNullOrWhiteSpace(choices[i]))
                return $"choice {Letter(i)} is empty.";
        var last = Letter(choices.Count - 1);
        if (example.Answer.Length != 1 || example.Answer[0] < 'A' || example.Answer[0] > last[0])
            return $"\"answer\" must be the letter of a choice, A to {last} for {choices.Count} choices, found \"{example.Answer}\".";
        return null;
    }

    /// <summary>The letter of the choice at <paramref name="index"/>: "A" for 0, "B" for 1, ….</summary>
    public static string Letter(int index) =>
        index is >= 0 and < MaxChoices
            ? ((char)('A' + index)).ToString()
            : throw new ArgumentOutOfRangeException(nameof(index), index, $"A choice index is 0..{MaxChoices - 1}.");

    /// <summary>The JSON name of a task kind: "generation" or "multiple_choice".</summary>
    public static string KindName(TaskKind kind) => kind switch
    {
        TaskKind.Generation => "generation",
        TaskKind.MultipleChoice => "multiple_choice",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The JSON name of an answer extraction: "first_line", "choice_letter", "yes_no" or "final_number".</summary>
    public static string ExtractionName(AnswerExtraction extraction) => extraction switch
    {
        AnswerExtraction.FirstLine => "first_line",
        AnswerExtraction.ChoiceLetter => "choice_letter",
        AnswerExtraction.YesNo => "yes_no",
        AnswerExtraction.FinalNumber => "final_number",
        _ => throw new ArgumentOutOfRangeException(nameof(extraction), extraction, null),
    };

    static TaskKind? ParseKind(string text) => text switch
    {
        "generation" => TaskKind.Generation,
        "multiple_choice" => TaskKind.MultipleChoice,
        _ => null,
    };

    static AnswerExtraction? ParseExtraction(string text) => text switch
    {
        "first_line" => AnswerExtraction.FirstLine,
        "choice_letter" => AnswerExtraction.ChoiceLetter,
        "yes_no" => AnswerExtraction.YesNo,
        "final_number" => AnswerExtraction.FinalNumber,
        _ => null,
    };

    static void CheckSpec(string path, TaskSpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Name))
            throw new TaskFormatException(path, "the task has no name.");
        CheckName(path, "the task name", spec.Name);
        foreach (var component in spec.Components)
            CheckName(path, "a task in \"components\"", component);
        if (string.IsNullOrWhiteSpace(spec.Domain))
            throw new TaskFormatException(path, $"task '{spec.Name}' has no domain.");
    }

    // A task's name is its directory's name under the suite and the teacher pool, and components name directories.
    static void CheckName(string path, string field, string name)
    {
        if (PathNames.Problem(name) is { } problem)
            throw new TaskFormatException(
                path,
                $"{field} {PathNames.Quote(name)} cannot be a directory name: {problem} (a task name is not \".\" or \"..\" and holds no '/', " +
                $"'\\' or control characters).");
    }

    static void CheckExamples(string path, IReadOnlyList<TaskExample> examples, TaskKind kind)
    {
        for (var i = 0; i < examples.Count; i++)
            if (Problem(examples[i], kind) is { } problem)
                throw new TaskFormatException(path, i + 1, problem);
    }

    static void WriteSpec(Stream stream, TaskSpec spec)
    {
        using var writer = new Utf8JsonWriter(stream, SpecWriterOptions);
        writer.WriteStartObject();
        writer.WriteString("name", spec.Name);
        writer.WriteString("domain", spec.Domain);
        writer.WriteString("kind", KindName(spec.Kind));
        writer.WriteString("extraction", ExtractionName(spec.Extraction));
        writer.WriteString("metric", spec.Metric);
        if (spec.Instruction is not null)
            writer.WriteString("instruction", spec.Instruction);
        if (spec.Description is not null)
            writer.WriteString("description", spec.Description);
        writer.WriteStartArray("components");
        foreach (var component in spec.Components)
            writer.WriteStringValue(component);
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.Flush();
        stream.WriteByte((byte)'\n');
    }

    static void WriteExamples(Stream stream, IReadOnlyList<TaskExample> examples)
    {
        foreach (var example in examples)
        {
            using (var writer = new Utf8JsonWriter(stream, LineWriterOptions))
            {
                writer.WriteStartObject();
                writer.WriteString("prompt", example.Prompt);
                if (example.Choices is { } choices)
                {
                    writer.WriteStartArray("choices");
                    foreach (var choice in choices)
                        writer.WriteStringValue(choice);
                    writer.WriteEndArray();
                }
                writer.WriteString("answer", example.Answer);
                writer.WriteEndObject();
            }
            stream.WriteByte((byte)'\n');
        }
    }

    static string RequiredString(string path, JsonElement root, string key) =>
        OptionalString(path, root, key) is { Length: > 0 } value && !string.IsNullOrWhiteSpace(value)
            ? value
            : throw new TaskFormatException(path, $"missing or empty \"{key}\" (expected a non-empty string).");

    static string? OptionalString(string path, JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new TaskFormatException(path, $"\"{key}\" must be a string, found {Describe(value)}.");
    }

    /// <summary>A short description of a JSON value for error messages, e.g. "a number (3)" or "a list".</summary>
    internal static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => $"a list of {value.GetArrayLength()} items",
        JsonValueKind.String => $"a string ({JsonSerializer.Serialize(Shorten(value.GetString()!), LineOptions)})",
        JsonValueKind.Number => $"a number ({value.GetRawText()})",
        JsonValueKind.True or JsonValueKind.False => $"a boolean ({value.GetRawText()})",
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString(),
    };

    static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "…";
}
