namespace LLGBM.Tasks.Import;

/// <summary>The converters of every supported dataset format, by format name.</summary>
public static class DatasetConverters
{
    /// <summary>Every converter, keyed by <see cref="DatasetConverter.Format"/>, in a fixed order.</summary>
    public static IReadOnlyList<DatasetConverter> All { get; } =
    [
        ArcConverter.Easy,
        ArcConverter.Challenge,
        new BoolQConverter(),
        new Gsm8kConverter(),
        new HellaSwagConverter(),
        new OpenBookQaConverter(),
        new PiqaConverter(),
        new WinoGrandeConverter(),
    ];

    /// <summary>The format names, as <c>--format</c> takes them.</summary>
    public static IReadOnlyList<string> Formats { get; } = [.. All.Select(c => c.Format)];

    /// <summary>The converter for <paramref name="format"/> (case-insensitive).</summary>
    /// <exception cref="LlgbmException">No converter has that name; the message lists those that exist.</exception>
    public static DatasetConverter Get(string format) =>
        All.FirstOrDefault(c => string.Equals(c.Format, format.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new LlgbmException($"Unknown dataset format '{format}'; expected one of {string.Join(", ", Formats)}.");
}
