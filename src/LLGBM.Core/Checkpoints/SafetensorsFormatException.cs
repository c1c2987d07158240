namespace LLGBM.Checkpoints;

/// <summary>A safetensors file breaks one of the format's rules; see <see cref="Rule"/>.</summary>
public sealed class SafetensorsFormatException : LlgbmException
{
    /// <summary>Creates the error for <paramref name="file"/> breaking <paramref name="rule"/>.</summary>
    /// <param name="file">The path of the file, as given to the reader.</param>
    /// <param name="rule">The rule the file breaks.</param>
    /// <param name="detail">What was expected and what was found, naming the tensor if there is one.</param>
    public SafetensorsFormatException(string file, SafetensorsRule rule, string detail)
        : base(Compose(file, rule, detail))
    {
        File = file;
        Rule = rule;
    }

    /// <summary>Creates the error with the exception that revealed it (a JSON parser error, say).</summary>
    /// <param name="file">The path of the file, as given to the reader.</param>
    /// <param name="rule">The rule the file breaks.</param>
    /// <param name="detail">What was expected and what was found, naming the tensor if there is one.</param>
    /// <param name="inner">The exception that revealed the problem.</param>
    public SafetensorsFormatException(string file, SafetensorsRule rule, string detail, Exception inner)
        : base(Compose(file, rule, detail), inner)
    {
        File = file;
        Rule = rule;
    }

    /// <summary>The path of the offending file.</summary>
    public string File { get; }

    /// <summary>The first rule the file breaks.</summary>
    public SafetensorsRule Rule { get; }

    private static string Compose(string file, SafetensorsRule rule, string detail) =>
        $"'{file}' is not a valid safetensors file ({rule}): {detail}";
}
