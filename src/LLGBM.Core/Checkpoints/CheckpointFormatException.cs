namespace LLGBM.Checkpoints;

/// <summary>
/// The weight files of a Hugging Face checkpoint directory are missing or inconsistent; see <see cref="Rule"/>.
/// Errors inside one safetensors file are <see cref="SafetensorsFormatException"/> instead.
/// </summary>
public sealed class CheckpointFormatException : LlgbmException
{
    /// <summary>Creates the error for <paramref name="directory"/> breaking <paramref name="rule"/>.</summary>
    /// <param name="directory">The checkpoint directory, as given.</param>
    /// <param name="file">The file concerned, or null when the problem is the directory as a whole.</param>
    /// <param name="rule">The rule broken.</param>
    /// <param name="detail">What was expected and what was found.</param>
    public CheckpointFormatException(string directory, string? file, CheckpointRule rule, string detail)
        : base(Compose(directory, file, rule, detail))
    {
        Directory = directory;
        File = file;
        Rule = rule;
    }

    /// <summary>Creates the error with the exception that revealed it.</summary>
    /// <param name="directory">The checkpoint directory, as given.</param>
    /// <param name="file">The file concerned, or null when the problem is the directory as a whole.</param>
    /// <param name="rule">The rule broken.</param>
    /// <param name="detail">What was expected and what was found.</param>
    /// <param name="inner">The exception that revealed the problem.</param>
    public CheckpointFormatException(
        string directory, string? file, CheckpointRule rule, string detail, Exception inner)
        : base(Compose(directory, file, rule, detail), inner)
    {
        Directory = directory;
        File = file;
        Rule = rule;
    }

    /// <summary>The checkpoint directory, as given.</summary>
    public string Directory { get; }

    /// <summary>The file concerned (an index or shard path), or null when the problem is the directory as a whole.</summary>
    public string? File { get; }

    /// <summary>The rule broken.</summary>
    public CheckpointRule Rule { get; }

    private static string Compose(string directory, string? file, CheckpointRule rule, string detail) =>
        file is null
            ? $"Checkpoint directory '{directory}' has invalid weights ({rule}): {detail}"
            : $"Checkpoint directory '{directory}' has invalid weights ({rule}) in '{file}': {detail}";
}
