namespace LLGBM.Tasks.Import;

/// <summary>Builds a task from dataset exports: the converter applied to every record of the train and test files.</summary>
public static class TaskImport
{
    /// <summary>
    /// Converts <paramref name="input"/> (the training split) and, when given, <paramref name="testInput"/> (the held-out
    /// split; without it the test split is empty) with the converter of <paramref name="format"/>.
    /// </summary>
    /// <param name="format">A name from <see cref="DatasetConverters.Formats"/>.</param>
    /// <param name="input">The training split's export (JSONL, or Parquet by its <c>.parquet</c> extension).</param>
    /// <param name="testInput">The held-out split's export, or null.</param>
    /// <param name="name">The task's name; the format name when null.</param>
    /// <param name="domain">The task's domain; the converter's default (see <see cref="DatasetConverter.Domain"/>) when null.</param>
    /// <exception cref="TaskFormatException">A file is missing or unreadable, or a record is malformed (named by file and row).</exception>
    /// <exception cref="LlgbmException">The format is unknown.</exception>
    public static TaskData Import(string format, string input, string? testInput = null, string? name = null, string? domain = null)
    {
        var converter = DatasetConverters.Get(format);
        var train = Convert(converter, input);
        var test = testInput is null ? [] : Convert(converter, testInput);
        var sources = testInput is null
            ? $"train from {Path.GetFileName(input)}, no test split"
            : $"train from {Path.GetFileName(input)}, test from {Path.GetFileName(testInput)}";
        var spec = new TaskSpec
        {
            Name = string.IsNullOrWhiteSpace(name) ? converter.Format : name.Trim(),
            Domain = string.IsNullOrWhiteSpace(domain) ? converter.Domain : domain.Trim(),
            Kind = converter.Kind,
            Extraction = converter.Extraction,
            Instruction = converter.Instruction,
            Description = $"{converter.Source}, imported with the '{converter.Format}' converter ({sources}).",
        };
        return new TaskData(spec, train, test);
    }

    /// <summary>Every record of <paramref name="path"/> converted with <paramref name="converter"/>, in file order.</summary>
    /// <exception cref="TaskFormatException">The file is missing, unreadable or empty, or a record is malformed.</exception>
    public static IReadOnlyList<TaskExample> Convert(DatasetConverter converter, string path)
    {
        var rows = DatasetFile.Read(path);
        if (rows.Count == 0)
            throw new TaskFormatException(path, $"no records (expected {converter.Source} rows).");
        return [.. rows.Select(converter.Convert)];
    }
}
