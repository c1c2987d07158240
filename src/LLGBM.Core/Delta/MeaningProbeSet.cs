using System.Text.Json;
using LLGBM.Tasks;

namespace LLGBM.Delta;

/// <summary>
/// A named list of (prompt, continuation) text pairs, the probes of the delta meaning (<see cref="MeaningDeltaEmbedder"/>).
/// Being text, the same set is read by any backbone whatever its tokenizer, so deltas of adapters of different base
/// models have the same coordinates.
/// </summary>
public sealed class MeaningProbeSet
{
    /// <summary>
    /// The continuations paired with every generic prompt by <see cref="Generic"/>: a compliant answer, a yes, a no, a
    /// number and a refusal, each after one space as an answer follows a prompt.
    /// </summary>
    public static readonly IReadOnlyList<string> GenericContinuations =
    [
        " Sure, here is the response.",
        " Yes.",
        " No.",
        " 42",
        " I cannot answer that.",
    ];

    MeaningProbeSet(string name, IReadOnlyList<MeaningProbe> probes)
    {
        Name = name;
        Probes = probes;
        if (probes.Count == 0)
            throw new LlgbmException($"Meaning probe set '{name}' holds no probes.");
        for (var i = 0; i < probes.Count; i++)
        {
            if (string.IsNullOrEmpty(probes[i].Prompt))
                throw new LlgbmException($"Meaning probe set '{name}': probe {i} has an empty prompt.");
            if (string.IsNullOrEmpty(probes[i].Continuation))
                throw new LlgbmException($"Meaning probe set '{name}': probe {i} has an empty continuation.");
        }
    }

    /// <summary>The name of the set (used in reports; cache keys hash the pairs themselves).</summary>
    public string Name { get; }

    /// <summary>The pairs, in coordinate order.</summary>
    public IReadOnlyList<MeaningProbe> Probes { get; }

    /// <summary>The number of pairs: the width of the delta meaning.</summary>
    public int Count => Probes.Count;

    /// <summary>A set of the given pairs; every prompt and continuation must be non-empty.</summary>
    public static MeaningProbeSet FromPairs(string name, IEnumerable<MeaningProbe> probes) => new(name, [.. probes]);

    /// <summary>
    /// The first <paramref name="n"/> generic Alpaca-style prompts (<see cref="ProbeSet.Generic"/>), each followed by
    /// every one of <see cref="GenericContinuations"/>: n × 5 pairs, prompt-major. The name is <c>generic-meaning-n</c>.
    /// </summary>
    public static MeaningProbeSet Generic(int n = 5) =>
        new($"generic-meaning-{n}", [.. ProbeSet.Generic(n).Texts!.SelectMany(p => GenericContinuations.Select(c => new MeaningProbe(p, c)))]);

    /// <summary>
    /// Task-derived pairs: <paramref name="perTask"/> training examples of each task, drawn with
    /// <see cref="PromptBatches.Sample"/> (seed mixed with the task's position by <see cref="PromptBatches.BatchSeed"/>,
    /// so the prompts are those of <see cref="ProbeSet.FromTasks"/> with the same arguments), each the bare prompt followed
    /// by its right answer as the model reads it after the prompt (<see cref="PromptFormat.Continuation"/>; for
    /// multiple choice the right choice's text); in task order. The name is <c>task-answers-{perTask}-{seed}</c>.
    /// </summary>
    public static MeaningProbeSet FromTasks(IEnumerable<TaskData> tasks, int perTask, long seed)
    {
        var probes = new List<MeaningProbe>();
        var index = 0;
        foreach (var task in tasks)
        {
            var batch = PromptBatches.Sample(task, perTask, PromptBatches.BatchSeed(seed, index++), PromptBatchMode.PromptsWithAnswers);
            probes.AddRange(batch.Items.Select(item => new MeaningProbe(item.Prompt, PromptFormat.Continuation(item.Answer!))));
        }
        if (index == 0)
            throw new LlgbmException("Task meaning probes: no tasks given.");
        return new($"task-answers-{perTask}-{seed}", probes);
    }

    /// <summary>
    /// Loads pairs from <paramref name="file"/>: a JSON list of <c>{"prompt": ..., "continuation": ...}</c> objects, or
    /// JSONL with one such object per line (blank lines allowed). Other keys are ignored. Errors name the file and the
    /// item or line. The set is named after the file.
    /// </summary>
    public static MeaningProbeSet Load(string file)
    {
        if (!File.Exists(file))
            throw new LlgbmException($"{file}: meaning probe file not found.");
        var content = TextFiles.ReadAllText(file);
        var name = Path.GetFileNameWithoutExtension(file);
        var probes = new List<MeaningProbe>();
        if (content.TrimStart().StartsWith('['))
        {
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(content);
            }
            catch (JsonException e)
            {
                throw new LlgbmException($"{file}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message}).", e);
            }
            using (doc)
            {
                var i = 0;
                foreach (var item in doc.RootElement.EnumerateArray())
                    probes.Add(Pair(item, $"{file}: probe {i++}"));
            }
        }
        else
        {
            var lines = content.Split('\n');
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
                    throw new LlgbmException(
                        $"{file}, line {n + 1}: not valid JSON ({e.Message}); expected {{\"prompt\": \"...\", \"continuation\": \"...\"}}.", e);
                }
                using (doc)
                    probes.Add(Pair(doc.RootElement, $"{file}, line {n + 1}"));
            }
        }
        if (probes.Count == 0)
            throw new LlgbmException($"{file}: no meaning probes found.");
        return new(name, probes);
    }

    static MeaningProbe Pair(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Object)
            throw new LlgbmException($"{where}: is {item.ValueKind}, expected an object {{\"prompt\": \"...\", \"continuation\": \"...\"}}.");
        string Text(string key) =>
            item.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
                ? text
                : throw new LlgbmException($"{where}: expected a non-empty string \"{key}\".");
        return new MeaningProbe(Text("prompt"), Text("continuation"));
    }
}
