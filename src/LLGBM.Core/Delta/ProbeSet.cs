using System.Text.Json;
using LLGBM.Tasks;
using LLGBM.Text;

namespace LLGBM.Delta;

/// <summary>
/// A named set of probe inputs for delta activations: either probe texts (tokenized with the base model's tokenizer)
/// or probes given directly as token ids (for models without a tokenizer). Exactly one of <see cref="Texts"/> and
/// <see cref="TokenIds"/> is set.
/// </summary>
public sealed class ProbeSet
{
    /// <summary>The task line of the generic probes: "Please provide a response."</summary>
    public const string GenericTask = "Please provide a response.";

    /// <summary>The input of the generic probes: "Input."</summary>
    public const string GenericInput = "Input.";

    /// <summary>
    /// The preamble sentences of the five generic probes. The Delta Activations paper (arXiv 2509.04442) uses five
    /// Alpaca-style templates but these five preambles are this project's rendering of them, not the paper's exact
    /// strings.
    /// </summary>
    public static readonly IReadOnlyList<string> GenericPreambles =
    [
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
        "Below is an instruction that describes a task, paired with an input that provides further context. " +
        "Write a response that appropriately completes the request.",
        "The following is an instruction that describes a task. Write a response that completes it appropriately.",
        "Read the instruction below, which describes a task, and write a response that appropriately completes the request.",
        "You are given an instruction that describes a task. Provide a response that appropriately completes the request.",
    ];

    /// <summary>Sentences appended to the preambles to vary them for the probes beyond the fifth (see <see cref="Generic"/>).</summary>
    public static readonly IReadOnlyList<string> GenericVariations =
    [
        "Be concise.",
        "Think carefully before answering.",
        "Answer as helpfully as possible.",
    ];

    ProbeSet(string name, IReadOnlyList<string>? texts, IReadOnlyList<IReadOnlyList<int>>? ids)
    {
        Name = name;
        Texts = texts;
        TokenIds = ids;
        if (Count == 0)
            throw new LlgbmException($"Probe set '{name}' holds no probes.");
    }

    /// <summary>The name of the set (used in cache keys and reports).</summary>
    public string Name { get; }

    /// <summary>The probe texts, or null when the probes are token ids.</summary>
    public IReadOnlyList<string>? Texts { get; }

    /// <summary>The probes as token ids, or null when they are texts.</summary>
    public IReadOnlyList<IReadOnlyList<int>>? TokenIds { get; }

    /// <summary>The number of probes.</summary>
    public int Count => Texts?.Count ?? TokenIds!.Count;

    /// <summary>A set of probe texts.</summary>
    public static ProbeSet FromTexts(string name, IEnumerable<string> texts) => new(name, [.. texts], null);

    /// <summary>A set of probes given as token ids; every probe needs at least one id.</summary>
    public static ProbeSet FromIds(string name, IEnumerable<IEnumerable<int>> ids)
    {
        IReadOnlyList<IReadOnlyList<int>> list = [.. ids.Select(p => (IReadOnlyList<int>)[.. p])];
        for (var i = 0; i < list.Count; i++)
            if (list[i].Count == 0)
                throw new LlgbmException($"Probe set '{name}': probe {i} has no token ids.");
        return new(name, null, list);
    }

    /// <summary>
    /// The generic probe text with the given preamble: <c>{preamble}\n\n### Instruction:\n{task} Input:{input}\n\n### Response:</c>
    /// with task <see cref="GenericTask"/> and input <see cref="GenericInput"/>; no chat template.
    /// </summary>
    public static string GenericText(string preamble) =>
        $"{preamble}\n\n### Instruction:\n{GenericTask} Input:{GenericInput}\n\n### Response:";

    /// <summary>
    /// The first <paramref name="n"/> generic Alpaca-style probes (n = 1, 5, 10, 20 are the usual sizes). Probe k uses
    /// preamble k mod 5; from the sixth on, the preamble is followed by variation (k / 5 − 1) mod 3 of
    /// <see cref="GenericVariations"/>, so the first 20 probes are distinct and later ones repeat them.
    /// Deterministic; the name is <c>generic-n</c>.
    /// </summary>
    public static ProbeSet Generic(int n = 5)
    {
        if (n < 1)
            throw new LlgbmException($"Generic probes: the number of probes must be at least 1 (found {n}).");
        var texts = new List<string>(n);
        for (var k = 0; k < n; k++)
        {
            var preamble = GenericPreambles[k % GenericPreambles.Count];
            var round = k / GenericPreambles.Count;
            if (round > 0)
                preamble += " " + GenericVariations[(round - 1) % GenericVariations.Count];
            texts.Add(GenericText(preamble));
        }
        return FromTexts($"generic-{n}", texts);
    }

    /// <summary>
    /// Domain-specific probes: <paramref name="perTask"/> training prompts of each task, drawn with
    /// <see cref="PromptBatches.Sample"/> (seed mixed with the task's position by <see cref="PromptBatches.BatchSeed"/>),
    /// in task order. The name is <c>tasks-{perTask}-{seed}</c>.
    /// </summary>
    public static ProbeSet FromTasks(IEnumerable<TaskData> tasks, int perTask, long seed)
    {
        var texts = new List<string>();
        var index = 0;
        foreach (var task in tasks)
        {
            var batch = PromptBatches.Sample(task, perTask, PromptBatches.BatchSeed(seed, index++));
            texts.AddRange(batch.Items.Select(item => item.Prompt));
        }
        if (index == 0)
            throw new LlgbmException("Task probes: no tasks given.");
        return FromTexts($"tasks-{perTask}-{seed}", texts);
    }

    /// <summary>
    /// Loads probe texts from <paramref name="file"/>: a JSON list of strings, or JSONL with one
    /// <c>{"text": ...}</c> object per line (blank lines allowed). Errors name the file and line. The set is named
    /// after the file.
    /// </summary>
    public static ProbeSet Load(string file)
    {
        var content = ReadFile(file);
        var name = Path.GetFileNameWithoutExtension(file);
        if (content.TrimStart().StartsWith('['))
        {
            using var doc = ParseJson(file, content);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new LlgbmException($"{file}: expected a JSON list of probe strings.");
            var texts = new List<string>();
            var i = 0;
            foreach (var item in doc.RootElement.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                    throw new LlgbmException($"{file}: probe {i} is {item.ValueKind}, expected a string.");
                texts.Add(item.GetString()!);
                i++;
            }
            return FromTexts(name, texts);
        }
        var lines = content.Split('\n');
        var result = new List<string>();
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n].Trim();
            if (line.Length == 0)
                continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new LlgbmException($"{file}, line {n + 1}: not valid JSON ({e.Message}); expected {{\"text\": \"...\"}}.", e);
            }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object
                    || !doc.RootElement.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                    throw new LlgbmException($"{file}, line {n + 1}: expected an object with a string \"text\".");
                result.Add(text.GetString()!);
            }
        }
        if (result.Count == 0)
            throw new LlgbmException($"{file}: no probes found.");
        return FromTexts(name, result);
    }

    /// <summary>Loads token-id probes from <paramref name="file"/>: a JSON list of lists of token ids.</summary>
    public static ProbeSet LoadIds(string file)
    {
        var content = ReadFile(file);
        using var doc = ParseJson(file, content);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new LlgbmException($"{file}: expected a JSON list of token-id lists, e.g. [[1, 2, 3], [4, 5]].");
        var probes = new List<List<int>>();
        var i = 0;
        foreach (var probe in doc.RootElement.EnumerateArray())
        {
            if (probe.ValueKind != JsonValueKind.Array)
                throw new LlgbmException($"{file}: probe {i} is {probe.ValueKind}, expected a list of token ids.");
            var ids = new List<int>();
            foreach (var id in probe.EnumerateArray())
            {
                if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out var value) || value < 0)
                    throw new LlgbmException($"{file}: probe {i} holds {id.GetRawText()}, expected non-negative integer token ids.");
                ids.Add(value);
            }
            if (ids.Count == 0)
                throw new LlgbmException($"{file}: probe {i} has no token ids.");
            probes.Add(ids);
            i++;
        }
        if (probes.Count == 0)
            throw new LlgbmException($"{file}: no probes found.");
        return FromIds(Path.GetFileNameWithoutExtension(file), probes);
    }

    /// <summary>
    /// The probes as token ids: the ids as given, or the texts encoded with <paramref name="tokenizer"/> (no special
    /// tokens added). Text probes need a tokenizer.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>> Tokenize(ITokenizer? tokenizer)
    {
        if (TokenIds is { } ids)
            return ids;
        if (tokenizer is null)
            throw new LlgbmException($"Probe set '{Name}' holds texts; a tokenizer is needed to turn them into token ids.");
        var result = Texts!.Select(tokenizer.Encode).ToList();
        for (var i = 0; i < result.Count; i++)
            if (result[i].Count == 0)
                throw new LlgbmException($"Probe set '{Name}': probe {i} encodes to no tokens.");
        return result;
    }

    static string ReadFile(string file)
    {
        if (!File.Exists(file))
            throw new LlgbmException($"{file}: probe file not found.");
        return TextFiles.ReadAllText(file);
    }

    static JsonDocument ParseJson(string file, string content)
    {
        try
        {
            return JsonDocument.Parse(content);
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{file}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message}).", e);
        }
    }
}
