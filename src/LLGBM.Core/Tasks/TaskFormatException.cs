namespace LLGBM.Tasks;

/// <summary>
/// A task file (<c>task.json</c>, <c>train.jsonl</c>, <c>test.jsonl</c>) or a dataset export being imported is missing
/// or malformed. The message names the file, the 1-based line (a row, for Parquet files) when one line is at fault,
/// and what was expected.
/// </summary>
public sealed class TaskFormatException : LlgbmException
{
    /// <summary>Creates the error for <paramref name="file"/> as a whole.</summary>
    /// <param name="file">The file concerned, as given.</param>
    /// <param name="detail">What was expected and what was found.</param>
    public TaskFormatException(string file, string detail)
        : base($"'{file}': {detail}")
    {
        File = file;
        Detail = detail;
    }

    /// <summary>Creates the error for one line (or Parquet row) of <paramref name="file"/>.</summary>
    /// <param name="file">The file concerned, as given.</param>
    /// <param name="line">The 1-based line of a text file, or the 1-based row of a Parquet file.</param>
    /// <param name="detail">What was expected and what was found.</param>
    public TaskFormatException(string file, int line, string detail)
        : base($"'{file}' {PositionWord(file)} {line}: {detail}")
    {
        File = file;
        Line = line;
        Detail = detail;
    }

    /// <summary>Creates the error with the exception that revealed it (an I/O or JSON error).</summary>
    /// <param name="file">The file concerned, as given.</param>
    /// <param name="detail">What was expected and what was found.</param>
    /// <param name="inner">The exception that revealed the problem.</param>
    public TaskFormatException(string file, string detail, Exception inner)
        : base($"'{file}': {detail}", inner)
    {
        File = file;
        Detail = detail;
    }

    /// <summary>The file concerned, as given.</summary>
    public string File { get; }

    /// <summary>The 1-based line (text files) or row (Parquet files) at fault, or null when the file as a whole is.</summary>
    public int? Line { get; }

    /// <summary>What was expected and what was found, without the file and line.</summary>
    public string Detail { get; }

    /// <summary>"row" for Parquet files, whose records have no lines; "line" otherwise.</summary>
    internal static string PositionWord(string file) =>
        file.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) ? "row" : "line";
}
