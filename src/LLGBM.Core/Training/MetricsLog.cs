using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LLGBM.Training;

/// <summary>
/// A run's <c>metrics.jsonl</c>: one JSON object per line and logged step, such as
/// <c>{"step":120,"wall_time":1717000000.25,"loss/total":0.83,"delta/cos":0.91}</c>. Each line is written with one
/// write and flushed to the operating system, so an interrupted run leaves at most its last line incomplete.
/// Opening the log for a run resumed from its checkpoint at step S (<see cref="Resume"/>) keeps only the lines whose
/// step is at most S, drops an incomplete last line with a warning, and rewrites the file atomically; appending then
/// accepts only steps after S, so the resumed log has no duplicate or future steps. Non-finite values are written as
/// the strings "NaN", "Infinity" and "-Infinity" (JSON has no such numbers). Not thread-safe.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    /// <summary>The log's usual file name in a run directory.</summary>
    public const string FileName = "metrics.jsonl";

    /// <summary>The key of the integer step every line holds.</summary>
    public const string StepKey = "step";

    /// <summary>The key of the time of logging (seconds since the Unix epoch) that <see cref="Append(long, IReadOnlyDictionary{string, double})"/>
    /// adds.</summary>
    public const string WallTimeKey = "wall_time";

    readonly FileStream stream;
    readonly long? resumedAtStep;
    bool disposed;

    MetricsLog(string path, long? resumedAtStep, long? lastStep, int keptLines, int droppedLines, IReadOnlyList<string> warnings)
    {
        Path = path;
        this.resumedAtStep = resumedAtStep;
        LastStep = lastStep;
        KeptLines = keptLines;
        DroppedLines = droppedLines;
        Warnings = warnings;
        stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    /// <summary>The log file's path.</summary>
    public string Path { get; }

    /// <summary>The greatest step in the file (kept or appended), or null while it is empty.</summary>
    public long? LastStep { get; private set; }

    /// <summary>The lines kept from an existing file on <see cref="Resume"/> (0 for <see cref="StartNew"/>).</summary>
    public int KeptLines { get; }

    /// <summary>The lines dropped on <see cref="Resume"/> because their step came after the checkpoint.</summary>
    public int DroppedLines { get; }

    /// <summary>What opening the log found worth telling: an incomplete last line that was dropped. For the caller to print.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Starts the log of a new run: <paramref name="path"/> (and its directory) is created, or replaced by an empty file.</summary>
    public static MetricsLog StartNew(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        AtomicFile.Write(full, _ => { });
        return new MetricsLog(full, null, null, 0, 0, []);
    }

    /// <summary>
    /// Opens the log of a run resumed from its checkpoint at step <paramref name="step"/>: keeps the lines whose step
    /// is at most <paramref name="step"/> (in their order and exact text), drops the later ones and an incomplete last
    /// line (reported in <see cref="Warnings"/>), and rewrites the file atomically before appending. A missing file
    /// starts empty. Any other line that is not a JSON object with an integer "step" is an
    /// <see cref="LlgbmException"/> naming the file and line.
    /// </summary>
    public static MetricsLog Resume(string path, long step)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var warnings = new List<string>();
        var lines = File.Exists(full) ? Parse(full, warnings.Add) : [];
        var kept = lines.Where(l => l.Step <= step).ToList();
        AtomicFile.Write(full, s =>
        {
            foreach (var line in kept)
                s.Write(Encoding.UTF8.GetBytes(line.Text + "\n"));
        });
        long? last = kept.Count == 0 ? null : kept.Max(l => l.Step);
        return new MetricsLog(full, step, last, kept.Count, lines.Count - kept.Count, warnings);
    }

    /// <summary>
    /// Reads a metrics log: one object per line, in file order. Blank lines are skipped; an incomplete last line (a
    /// run being written or interrupted) is skipped and reported to <paramref name="warn"/>; any other line that is
    /// not a JSON object with an integer "step" is an <see cref="LlgbmException"/> naming the file and line.
    /// </summary>
    public static IReadOnlyList<JsonObject> Read(string path, Action<string>? warn = null)
    {
        if (!File.Exists(path))
            throw new LlgbmException($"Metrics log {path} does not exist.");
        return Parse(path, warn ?? (_ => { })).Select(l => l.Entry).ToList();
    }

    /// <summary>
    /// Appends one line: <c>{"step": step, "wall_time": now, ...values}</c>, and flushes. The step must come after the
    /// resumed checkpoint's step and must not be smaller than the last step in the log; value names must differ from
    /// "step" and "wall_time".
    /// </summary>
    public void Append(long step, IReadOnlyDictionary<string, double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var entry = new JsonObject
        {
            [StepKey] = step,
            [WallTimeKey] = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds,
        };
        foreach (var (name, value) in values)
        {
            if (name is StepKey or WallTimeKey)
                throw new LlgbmException($"Metrics log {Path}: a value at step {step} is named '{name}', which the log uses itself; rename it.");
            entry[name] = Number(value);
        }
        Append(entry);
    }

    /// <summary>
    /// Appends <paramref name="entry"/> as one line and flushes. It must hold an integer "step", under the same rules
    /// as <see cref="Append(long, IReadOnlyDictionary{string, double})"/>.
    /// </summary>
    public void Append(JsonObject entry)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(entry);
        var step = StepOf(entry)
            ?? throw new LlgbmException($"Metrics log {Path}: an entry has no integer \"{StepKey}\"; got {entry.ToJsonString()}.");
        if (step <= resumedAtStep)
            throw new LlgbmException(
                $"Metrics log {Path}: step {step} is not after the checkpoint the run resumed from (step {resumedAtStep}); " +
                $"logging it would duplicate a kept line.");
        if (step < LastStep)
            throw new LlgbmException($"Metrics log {Path}: step {step} comes after step {LastStep}; steps must not decrease.");
        stream.Write(Encoding.UTF8.GetBytes(entry.ToJsonString() + "\n"));
        stream.Flush();
        LastStep = step;
    }

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        stream.Dispose();
    }

    static JsonNode Number(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value)
        : double.IsNaN(value) ? JsonValue.Create("NaN")
        : JsonValue.Create(value > 0 ? "Infinity" : "-Infinity");

    static long? StepOf(JsonObject entry) =>
        entry[StepKey] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var s) ? s : null;

    sealed record Line(long Step, JsonObject Entry, string Text);

    static List<Line> Parse(string path, Action<string> warn)
    {
        var texts = File.ReadAllText(path, Encoding.UTF8).Split('\n');
        var lastNonBlank = Array.FindLastIndex(texts, t => !string.IsNullOrWhiteSpace(t));
        var lines = new List<Line>();
        for (var i = 0; i <= lastNonBlank; i++)
        {
            var text = texts[i].TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(text))
                continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException) when (i == lastNonBlank)
            {
                warn($"Metrics log {path}: line {i + 1} is incomplete (the run was interrupted while writing it); dropped it.");
                continue;
            }
            catch (JsonException e)
            {
                throw new LlgbmException($"Metrics log {path}, line {i + 1}: expected a JSON object; {e.Message}", e);
            }
            if (node is not JsonObject entry || StepOf(entry) is not { } step)
                throw new LlgbmException($"Metrics log {path}, line {i + 1}: expected a JSON object with an integer \"{StepKey}\".");
            lines.Add(new Line(step, entry, text));
        }
        return lines;
    }
}
